"""A MovieLens zip on disk: checked, unpacked safely, and remembered by a marker.

Extraction goes to a temporary folder renamed into place (`atomic_write`), with a marker file
listing each file's size, modification time and CRC-32 and the zip's digests, so that the
next start reuses it without any request and notices a file changed since.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.data.errors import DatasetError
from app.data.files import atomic_write
from app.data.movielens import LAYOUTS, expected_files

log = logging.getLogger(__name__)

MARKER = ".movierec-extracted.json"
# 2: each file's size, modification time and CRC-32 (1 had sizes only).
MARKER_VERSION = 2
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class Digests:
    """A file's MD5 and SHA-256, to check against a checksum ("md5:..." or "sha256:...")."""

    md5: str
    sha256: str

    def matches(self, checksum: str) -> bool:
        """True when `checksum` names one of these digests with the same value."""
        algo, _, digest = checksum.partition(":")
        return bool(getattr(self, algo) == digest)


def is_cached(folder: Path, origin: Mapping[str, object], checksum: str) -> bool:
    """True when `folder` holds a complete, unchanged extraction of the same origin (and checksum).

    A file whose size or modification time differs from the marker's was changed after it
    was extracted (an edit of the same size included): it is extracted again from the zip.
    """
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if marker.get("version") != MARKER_VERSION or marker.get("origin") != origin:
        return False
    try:
        if checksum and not Digests(**marker["digests"]).matches(checksum):
            return False
        files = {name: (int(f["size"]), int(f["mtime_ns"])) for name, f in marker["files"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    if not files:
        return False
    for relative, (size, mtime_ns) in files.items():
        try:
            info = (folder / relative).stat()
        except OSError:
            info = None
        if info is None or (info.st_size, info.st_mtime_ns) != (size, mtime_ns):
            log.warning(
                "%s has changed since it was extracted; extracting the release again from the zip",
                relative,
            )
            return False
    return True


def extraction_digest(release: Path) -> str | None:
    """The SHA-256 of the zip that `release` was extracted from, if we extracted it."""
    for folder in (release, release.parent):
        try:
            marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
            return str(marker["digests"]["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def forget_extraction(folder: Path) -> bool:
    """Make the next fetch extract the release again (its files failed to load).

    False when `folder` is not an extraction of ours (a folder given as the source).
    """
    marker = folder / MARKER
    if not marker.is_file():
        return False
    marker.unlink(missing_ok=True)
    return True


def is_intact_zip(path: Path) -> bool:
    """True when `path` is a zip whose every member passes its CRC check."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def file_digests(path: Path) -> Digests:
    """The MD5 and SHA-256 of the file at `path`."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return Digests(md5=md5.hexdigest(), sha256=sha256.hexdigest())


def verified_zip_digests(path: Path, checksum: str) -> Digests | None:
    """The digests of an intact zip that matches `checksum` (if given), else None."""
    if not is_intact_zip(path):
        return None
    digests = file_digests(path)
    if checksum and not digests.matches(checksum):
        return None
    return digests


def _safe_members(archive: zipfile.ZipFile, max_bytes: int) -> list[zipfile.ZipInfo]:
    """The archive's members, refusing unsafe paths, links, absurd sizes and missing files."""
    members = archive.infolist()
    total = 0
    basenames = set()
    for info in members:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise DatasetError(
                f"The archive holds an unsafe path {name!r}; refusing to extract it.",
                public="The archive holds an unsafe path; refusing to extract it.",
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError(
                f"The archive holds a symbolic link {name!r}; refusing to extract it.",
                public="The archive holds a symbolic link; refusing to extract it.",
            )
        total += info.file_size
        if total > max_bytes:
            raise DatasetError(
                f"The archive would unpack to more than {max_bytes:,} bytes; refusing to extract "
                "it (raise EXTRACT_MAX_BYTES if this is expected)."
            )
        if parts:
            basenames.add(parts[-1])
    _check_layout(basenames)
    return members


def _check_layout(basenames: set[str]) -> None:
    """Refuse an archive without both files of some MovieLens layout, naming what is missing."""
    pairs = [(layout.ratings_file, layout.movies_file) for layout in LAYOUTS]
    if any(set(pair) <= basenames for pair in pairs):
        return
    for pair in pairs:
        if set(pair) & basenames:
            missing = next(name for name in pair if name not in basenames)
            raise DatasetError(f"The archive has no {missing}; is it a MovieLens release?")
    raise DatasetError(
        f"The archive has no MovieLens files: expected {expected_files()}; "
        "is it a MovieLens release?"
    )


def extract(
    zip_path: Path, folder: Path, origin: Mapping[str, object], digests: Digests, max_bytes: int
) -> None:
    """Safely unpack `zip_path` into `folder` via a temporary folder renamed into place."""
    try:
        with atomic_write(folder) as staging, zipfile.ZipFile(zip_path) as archive:
            members = _safe_members(archive, max_bytes)
            staging.mkdir()
            files: dict[str, dict[str, int]] = {}
            for info in members:
                relative = PurePosixPath(info.filename.replace("\\", "/"))
                target = staging.joinpath(*relative.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK_BYTES)
                written = target.stat()
                files[relative.as_posix()] = {
                    "size": written.st_size,
                    "mtime_ns": written.st_mtime_ns,
                    "crc32": info.CRC,
                }
            marker = {
                "version": MARKER_VERSION,
                "origin": origin,
                "files": files,
                "digests": {"md5": digests.md5, "sha256": digests.sha256},
            }
            (staging / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{zip_path.name} is not a valid zip archive: {exc}") from None
