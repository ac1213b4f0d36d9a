"""Get a MovieLens release onto disk: URL, local zip or folder -> extracted folder in DATA_DIR.

Downloads stream to a temporary file that is renamed into place only once complete and verified;
extraction goes to a temporary folder renamed into place the same way, with a marker that lets
the next start reuse it without any request. A file lock serialises workers sharing DATA_DIR.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.config import RELEASES, Settings, release_url
from app.data import lock
from app.data.movielens import LAYOUTS, DatasetError, expected_files

if TYPE_CHECKING:  # aiohttp is loaded only when something is downloaded
    import aiohttp

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int | None], None]
"""Called with (phase, done, total); total is None when unknown."""

MARKER = ".movierec-extracted.json"
# 2: each file's size, modification time and CRC-32 (1 had sizes only).
MARKER_VERSION = 2
CHUNK_BYTES = 1 << 16
OFFLINE_HINT = (
    "Check the network connection, or download the zip elsewhere and set MOVIELENS_SOURCE "
    "to its local path (for example MOVIELENS_SOURCE=/path/to/ml-latest-small.zip)."
)


class FetchError(DatasetError):
    """The dataset could not be fetched; `hint` says what the operator can do about it."""

    def __init__(self, message: str, hint: str = OFFLINE_HINT) -> None:
        super().__init__(message)
        self.hint = hint


class _Retryable(Exception):
    """A transient download failure worth another attempt."""


@dataclass(frozen=True)
class _Digests:
    md5: str
    sha256: str

    def matches(self, checksum: str) -> bool:
        algo, _, digest = checksum.partition(":")
        return bool(getattr(self, algo) == digest)


def _ignore_progress(phase: str, done: int, total: int | None) -> None:
    pass


async def fetch_dataset(settings: Settings, progress: ProgressCallback | None = None) -> Path:
    """Return a local folder holding the release named by `settings.source`, fetching if needed."""
    report = progress or _ignore_progress
    source = settings.source
    url = source if _is_url(source) else release_url(source)
    if url is not None:
        return await _fetch_url(url, settings, report)
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        return await _fetch_local_zip(path, settings, report)
    raise FetchError(
        f"MOVIELENS_SOURCE={source!r} is neither an http(s) URL nor an existing zip or folder "
        f"nor a known release name ({', '.join(RELEASES)}).",
        hint="Set MOVIELENS_SOURCE to a release name such as ml-25m, a MovieLens zip URL, "
        "a local .zip or an extracted folder.",
    )


def _waiting(report: ProgressCallback) -> Callable[[], None]:
    return lambda: report("waiting for another worker", 0, None)


def _is_url(source: str) -> bool:
    return urlsplit(source).scheme in {"http", "https"}


def _cache_name(filename: str) -> str:
    stem = filename[:-4] if filename.lower().endswith(".zip") else filename
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")
    return safe or "dataset"


async def _fetch_url(url: str, settings: Settings, report: ProgressCallback) -> Path:
    name = _cache_name(PurePosixPath(urlsplit(url).path).name)
    data_dir = settings.data_dir
    zip_path = data_dir / f"{name}.zip"
    folder = data_dir / name
    origin = {"url": url}
    async with lock.held_async(data_dir / f".{name}.lock", _waiting(report)):
        _clean_leftovers(data_dir, name)
        if _cached(folder, origin, settings.checksum):
            log.info("Using cached dataset in %s (no download)", folder)
            return folder
        digests = None
        if zip_path.is_file():
            digests = await asyncio.to_thread(_verified_zip_digests, zip_path, settings.checksum)
            if digests is None:
                log.warning("Cached %s is corrupt or does not match; fetching again", zip_path)
                zip_path.unlink(missing_ok=True)
        if digests is None:
            digests = await _download(url, zip_path, settings, report)
        report("extracting", 0, None)
        await asyncio.to_thread(
            _extract, zip_path, folder, origin, digests, settings.max_extract_bytes
        )
        return folder


async def _fetch_local_zip(path: Path, settings: Settings, report: ProgressCallback) -> Path:
    name = _cache_name(path.name)
    folder = settings.data_dir / name
    info = path.stat()
    origin = {"path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    async with lock.held_async(settings.data_dir / f".{name}.lock", _waiting(report)):
        _clean_leftovers(settings.data_dir, name)
        if _cached(folder, origin, settings.checksum):
            log.info("Using cached dataset in %s", folder)
            return folder
        report("verifying", 0, None)
        digests = await asyncio.to_thread(_verified_zip_digests, path, "")
        if digests is None:
            raise FetchError(
                f"{path} is not a valid zip archive.",
                hint="Point MOVIELENS_SOURCE at an intact MovieLens zip or folder.",
            )
        if settings.checksum and not digests.matches(settings.checksum):
            raise _checksum_error(path.name, settings.checksum, digests)
        report("extracting", 0, None)
        await asyncio.to_thread(_extract, path, folder, origin, digests, settings.max_extract_bytes)
        return folder


def _cached(folder: Path, origin: Mapping[str, object], checksum: str) -> bool:
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
        if checksum and not _Digests(**marker["digests"]).matches(checksum):
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


def _clean_leftovers(data_dir: Path, name: str) -> None:
    """Remove what an interrupted extraction or download left behind (called under the lock)."""
    leftovers = [
        *data_dir.glob(f".{glob.escape(name)}.*.tmp"),
        *data_dir.glob(f".{glob.escape(name)}.zip.*.part"),
    ]
    for path in leftovers:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # a read-only DATA_DIR: whoever writes it removes them
                log.warning("Leaving %s: %s", path.name, exc.strerror)
                return
    if leftovers:
        log.warning(
            "Removed %d file(s) an interrupted download or extraction left in DATA_DIR",
            len(leftovers),
        )


async def _download(url: str, dest: Path, settings: Settings, report: ProgressCallback) -> _Digests:
    """Download `url` to `dest` with retries and backoff, verifying size, checksum and format."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.download_timeout,
        sock_connect=settings.download_timeout,
        sock_read=settings.download_timeout,
    )
    attempts = settings.download_retries + 1
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        for attempt in range(1, attempts + 1):
            try:
                digests = await _download_once(session, url, dest, settings, report)
                break
            except _Retryable as exc:
                if attempt == attempts:
                    raise FetchError(
                        f"Could not download {url} after {attempts} attempt(s): {exc}"
                    ) from None
                delay = settings.download_backoff * 2 ** (attempt - 1)
                log.warning(
                    "Download attempt %d/%d failed (%s); retrying in %.1fs",
                    attempt,
                    attempts,
                    exc,
                    delay,
                )
                report("retrying", 0, None)
                await asyncio.sleep(delay)
        expected = settings.checksum or await _published_md5(session, url)
    if expected and not digests.matches(expected):
        dest.unlink(missing_ok=True)
        raise _checksum_error(url, expected, digests)
    if expected:
        log.info("Checksum %s verified", expected.partition(":")[0])
    return digests


async def _download_once(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    settings: Settings,
    report: ProgressCallback,
) -> _Digests:
    import aiohttp

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    try:
        async with session.get(url) as response:
            if response.status >= 500 or response.status == 429:
                raise _Retryable(f"the server answered {response.status} {response.reason}")
            if response.status != 200:
                raise FetchError(
                    f"Downloading {url} failed: the server answered "
                    f"{response.status} {response.reason}.",
                    hint="Check that MOVIELENS_SOURCE names an existing MovieLens zip, "
                    "or set it to a local copy.",
                )
            total = response.content_length
            if total is not None and total > settings.max_download_bytes:
                raise _too_big(url, total, settings.max_download_bytes)
            received = 0
            logged = 0
            report("downloading", 0, total)
            log.info("Downloading %s (%s bytes)", url, "unknown" if total is None else f"{total:,}")
            with part.open("wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                    received += len(chunk)
                    if received > settings.max_download_bytes:
                        raise _too_big(url, received, settings.max_download_bytes)
                    out.write(chunk)
                    md5.update(chunk)
                    sha256.update(chunk)
                    report("downloading", received, total)
                    # A log line per tenth of the file (or per 16 MiB when the size is unknown).
                    step = total // 10 if total else 16 << 20
                    if step and received - logged >= step:
                        logged = received
                        log.info(
                            "Downloaded %s of %s bytes",
                            f"{received:,}",
                            "?" if total is None else f"{total:,}",
                        )
            if total is not None and received != total:
                raise _Retryable(f"the transfer ended after {received} of {total} bytes")
        report("verifying", received, total)
        if not await asyncio.to_thread(_is_intact_zip, part):
            raise FetchError(
                f"{url} did not return a zip archive.",
                hint="Set MOVIELENS_SOURCE to the URL or path of a MovieLens .zip file.",
            )
        os.replace(part, dest)
        log.info("Downloaded %s (%d bytes) to %s", url, received, dest)
        return _Digests(md5=md5.hexdigest(), sha256=sha256.hexdigest())
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
        raise _Retryable(_describe_network_error(exc)) from None
    finally:
        part.unlink(missing_ok=True)


async def _published_md5(session: aiohttp.ClientSession, url: str) -> str:
    """The MD5 that the publisher lists next to the zip (`<url>.md5`), or '' if there is none."""
    import aiohttp

    try:
        async with session.get(url + ".md5") as response:
            if response.status != 200:
                return ""
            text = (await response.content.read(4096)).decode("ascii", "replace")
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        return ""
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    return f"md5:{match.group(0).lower()}" if match else ""


def _describe_network_error(exc: BaseException) -> str:
    import aiohttp

    if isinstance(exc, asyncio.TimeoutError):
        return "the server did not answer in time"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the transfer was cut off before the end"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"could not resolve the host name {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.strerror or "no answer"
        if isinstance(exc.os_error, ConnectionRefusedError):
            reason = "connection refused"
        return f"could not connect to {exc.host}:{exc.port} ({reason})"
    return str(exc) or type(exc).__name__


def _too_big(url: str, size: int, limit: int) -> FetchError:
    return FetchError(
        f"{url} is larger than the {limit:,}-byte limit ({size:,} bytes or more).",
        hint="Raise DOWNLOAD_MAX_BYTES if this dataset is expected to be that large.",
    )


def _checksum_error(what: str, expected: str, digests: _Digests) -> FetchError:
    algo = expected.partition(":")[0]
    return FetchError(
        f"The checksum of {what} does not match: expected {expected}, "
        f"got {algo}:{getattr(digests, algo)}.",
        hint="The file may be corrupt or different from the one expected; check "
        "MOVIELENS_CHECKSUM, or retry the download.",
    )


def _is_intact_zip(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def _file_digests(path: Path) -> _Digests:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
    return _Digests(md5=md5.hexdigest(), sha256=sha256.hexdigest())


def _verified_zip_digests(path: Path, checksum: str) -> _Digests | None:
    """The digests of an intact zip that matches `checksum` (if given), else None."""
    if not _is_intact_zip(path):
        return None
    digests = _file_digests(path)
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
                f"The archive holds an unsafe path {name!r}; refusing to extract it."
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DatasetError(
                f"The archive holds a symbolic link {name!r}; refusing to extract it."
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


def _extract(
    zip_path: Path, folder: Path, origin: Mapping[str, object], digests: _Digests, max_bytes: int
) -> None:
    """Safely unpack `zip_path` into `folder` via a temporary folder renamed into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.{uuid.uuid4().hex}.tmp")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = _safe_members(archive, max_bytes)
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
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{zip_path.name} is not a valid zip archive: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
