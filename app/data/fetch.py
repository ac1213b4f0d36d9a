"""Get a MovieLens release onto disk: URL, local zip or folder -> extracted folder in DATA_DIR.

Downloads stream to a temporary file that is renamed into place only once complete and verified;
extraction (archive.py) goes to a temporary folder renamed into place the same way, with a marker
that lets the next start reuse it without any request. A file lock serialises workers sharing
DATA_DIR.

Each error names the server's paths and URLs in its message, for the log, and the settings
(MOVIELENS_SOURCE, DATA_DIR) in its `public` text, for clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.backoff import Backoff
from app.config import RELEASES, Settings, release_url
from app.data import lock
from app.data.archive import (
    CHUNK_BYTES,
    Digests,
    extract,
    is_cached,
    is_intact_zip,
    verified_zip_digests,
)
from app.data.errors import FetchError
from app.data.files import atomic_write, clean_leftovers

if TYPE_CHECKING:  # aiohttp is loaded only when something is downloaded
    import aiohttp

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int | None], None]
"""Called with (phase, done, total); total is None when unknown."""

LEFTOVERS = "download or extraction"


class _Retryable(Exception):
    """A transient download failure worth another attempt."""


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
    known = ", ".join(RELEASES)
    raise FetchError(
        f"MOVIELENS_SOURCE={source!r} is neither an http(s) URL nor an existing zip or folder "
        f"nor a known release name ({known}).",
        public="MOVIELENS_SOURCE is neither an http(s) URL nor an existing zip or folder "
        f"nor a known release name ({known}).",
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
    zip_path = settings.data_dir / f"{name}.zip"

    async def downloaded() -> tuple[Path, Digests]:
        digests = None
        if zip_path.is_file():
            digests = await asyncio.to_thread(verified_zip_digests, zip_path, settings.checksum)
            if digests is None:
                log.warning("Cached %s is corrupt or does not match; fetching again", zip_path)
                zip_path.unlink(missing_ok=True)
        if digests is None:
            digests = await _download(url, zip_path, settings, report)
        return zip_path, digests

    return await _extracted(name, {"url": url}, settings, report, downloaded)


async def _fetch_local_zip(path: Path, settings: Settings, report: ProgressCallback) -> Path:
    info = path.stat()
    origin = {"path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}

    async def verified() -> tuple[Path, Digests]:
        report("verifying", 0, None)
        digests = await asyncio.to_thread(verified_zip_digests, path, "")
        if digests is None:
            raise FetchError(
                f"{path} is not a valid zip archive.",
                public="MOVIELENS_SOURCE is not a valid zip archive.",
                hint="Point MOVIELENS_SOURCE at an intact MovieLens zip or folder.",
            )
        if settings.checksum and not digests.matches(settings.checksum):
            raise _checksum_error(str(path), settings.checksum, digests)
        return path, digests

    return await _extracted(_cache_name(path.name), origin, settings, report, verified)


async def _extracted(
    name: str,
    origin: dict[str, object],
    settings: Settings,
    report: ProgressCallback,
    get_zip: Callable[[], Awaitable[tuple[Path, Digests]]],
) -> Path:
    """DATA_DIR/name, extracted from `get_zip()`'s zip unless a marker says it is already there.

    Under the release's lock, so that workers sharing DATA_DIR fetch and extract it once.
    """
    data_dir = settings.data_dir
    folder = data_dir / name
    async with lock.held_async(lock.dataset_lock(data_dir, name), _waiting(report)):
        clean_leftovers(data_dir, name, LEFTOVERS)
        if is_cached(folder, origin, settings.checksum):
            log.info("Using cached dataset in %s (no download)", folder)
            return folder
        zip_path, digests = await get_zip()
        report("extracting", 0, None)
        await asyncio.to_thread(
            extract, zip_path, folder, origin, digests, settings.max_extract_bytes
        )
        return folder


async def _download(url: str, dest: Path, settings: Settings, report: ProgressCallback) -> Digests:
    """Download `url` to `dest` with retries and backoff, verifying size, checksum and format."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=settings.download_timeout,
        sock_connect=settings.download_timeout,
        sock_read=settings.download_timeout,
    )
    attempts = settings.download_retries + 1
    backoff = Backoff(settings.download_backoff)
    async with aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as session:
        for attempt in range(1, attempts + 1):
            try:
                digests = await _download_once(session, url, dest, settings, report)
                break
            except _Retryable as exc:
                if attempt == attempts:
                    raise FetchError(
                        f"Could not download {url} after {attempts} attempt(s): {exc}",
                        public=f"Could not download MOVIELENS_SOURCE after {attempts} "
                        f"attempt(s): {exc}",
                    ) from None
                delay = backoff.pause(attempt)
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
) -> Digests:
    import aiohttp

    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    try:
        with atomic_write(dest) as part:
            async with session.get(url) as response:
                if response.status >= 500 or response.status == 429:
                    raise _Retryable(f"the server answered {response.status} {response.reason}")
                if response.status != 200:
                    answer = f"the server answered {response.status} {response.reason}."
                    raise FetchError(
                        f"Downloading {url} failed: {answer}",
                        public=f"Downloading MOVIELENS_SOURCE failed: {answer}",
                        hint="Check that MOVIELENS_SOURCE names an existing MovieLens zip, "
                        "or set it to a local copy.",
                    )
                total = response.content_length
                if total is not None and total > settings.max_download_bytes:
                    raise _too_big(url, total, settings.max_download_bytes)
                report("downloading", 0, total)
                log.info("Downloading %s (%s bytes)", url, "?" if total is None else f"{total:,}")
                received = 0
                logged = 0
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
            if not await asyncio.to_thread(is_intact_zip, part):
                raise FetchError(
                    f"{url} did not return a zip archive.",
                    public="MOVIELENS_SOURCE did not return a zip archive.",
                    hint="Set MOVIELENS_SOURCE to the URL or path of a MovieLens .zip file.",
                )
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
        raise _Retryable(_describe_network_error(exc)) from None
    log.info("Downloaded %s (%d bytes) to %s", url, received, dest)
    return Digests(md5=md5.hexdigest(), sha256=sha256.hexdigest())


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
    limits = f"is larger than the {limit:,}-byte limit ({size:,} bytes or more)."
    return FetchError(
        f"{url} {limits}",
        public=f"MOVIELENS_SOURCE {limits}",
        hint="Raise DOWNLOAD_MAX_BYTES if this dataset is expected to be that large.",
    )


def _checksum_error(what: str, expected: str, digests: Digests) -> FetchError:
    algo = expected.partition(":")[0]
    mismatch = f"does not match: expected {expected}, got {algo}:{getattr(digests, algo)}."
    return FetchError(
        f"The checksum of {what} {mismatch}",
        public=f"The checksum of MOVIELENS_SOURCE {mismatch}",
        hint="The file may be corrupt or different from the one expected; check "
        "MOVIELENS_CHECKSUM, or retry the download.",
    )
