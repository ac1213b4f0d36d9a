"""Fetching: real downloads from a local aiohttp server, cache reuse, and every way it can fail."""

from __future__ import annotations

import asyncio
import hashlib
import zipfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from aiohttp import web

from app import config
from app.config import Settings
from app.data.fetch import FetchError, fetch_dataset
from app.data.movielens import DatasetError, load
from tests.conftest import LAYOUT_FILES, DatasetServer, make_zip
from tests.tiny import TINY_MOVIES, TINY_RATINGS


def leftovers(settings: Settings) -> list[str]:
    """Files in the data folder other than lock files: partial downloads would show up here."""
    if not settings.data_dir.exists():
        return []
    return sorted(p.name for p in settings.data_dir.iterdir() if not p.name.endswith(".lock"))


async def test_downloads_extracts_and_reports_progress(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    seen: list[tuple[str, int, int | None]] = []
    folder = await fetch_dataset(settings.replace(source=url), lambda *event: seen.append(event))
    assert folder == settings.data_dir / "ml-tiny"
    assert len(load(folder).ratings) == 11
    assert (settings.data_dir / "ml-tiny.zip").read_bytes() == tiny_zip_bytes
    assert ("downloading", len(tiny_zip_bytes), len(tiny_zip_bytes)) in seen
    assert dataset_server.hits["/ml-tiny.zip"] == 1
    assert leftovers(settings) == ["ml-tiny", "ml-tiny.zip"]


async def test_second_start_reuses_the_cache_without_any_request(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    configured = settings.replace(source=url)
    first = await fetch_dataset(configured)
    requests = sum(dataset_server.hits.values())
    second = await fetch_dataset(configured)
    assert second == first
    assert sum(dataset_server.hits.values()) == requests


async def test_corrupt_extraction_is_rebuilt_from_the_cached_zip(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    configured = settings.replace(source=url)
    folder = await fetch_dataset(configured)
    ratings = folder / "ml-tiny" / "ratings.csv"
    ratings.write_text(TINY_RATINGS[:40])
    await fetch_dataset(configured)
    assert ratings.read_text() == TINY_RATINGS
    assert dataset_server.hits["/ml-tiny.zip"] == 1


async def test_partial_cached_zip_is_fetched_again(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "ml-tiny.zip").write_bytes(tiny_zip_bytes[:100])
    folder = await fetch_dataset(settings.replace(source=url))
    assert len(load(folder).movies) == 6
    assert dataset_server.hits["/ml-tiny.zip"] == 1
    assert (settings.data_dir / "ml-tiny.zip").read_bytes() == tiny_zip_bytes


async def test_404_fails_at_once_with_a_hint(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    with pytest.raises(FetchError, match="404") as info:
        await fetch_dataset(settings.replace(source=dataset_server.url("/nope.zip")))
    assert "MOVIELENS_SOURCE" in info.value.hint
    assert dataset_server.hits["/nope.zip"] == 1
    assert leftovers(settings) == []


async def test_server_errors_are_retried_with_backoff(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    calls = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return web.Response(status=503)
        return web.Response(body=tiny_zip_bytes)

    url = dataset_server.serve("/ml-tiny.zip", flaky)
    folder = await fetch_dataset(settings.replace(source=url))
    assert (folder / "ml-tiny" / "ratings.csv").is_file()
    assert calls == 2


async def test_timeout_gives_up_after_the_retries(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    released = asyncio.Event()

    async def stalls(request: web.Request) -> web.Response:
        await released.wait()  # no answer until the client has given up
        return web.Response(body=b"late")

    url = dataset_server.serve("/ml-tiny.zip", stalls)
    configured = settings.replace(source=url, download_timeout=0.2, download_retries=2)
    with pytest.raises(FetchError, match="after 3 attempt.*did not answer in time"):
        await fetch_dataset(configured)
    released.set()
    assert dataset_server.hits["/ml-tiny.zip"] == 3
    assert leftovers(settings) == []


async def test_truncated_download_leaves_no_file(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    async def cut_off(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(tiny_zip_bytes))})
        await response.prepare(request)
        await response.write(tiny_zip_bytes[: len(tiny_zip_bytes) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    url = dataset_server.serve("/ml-tiny.zip", cut_off)
    with pytest.raises(FetchError, match="cut off|ended after"):
        await fetch_dataset(settings.replace(source=url))
    assert dataset_server.hits["/ml-tiny.zip"] == 2
    assert leftovers(settings) == []


async def test_non_zip_is_rejected(settings: Settings, dataset_server: DatasetServer) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", b"<html>Not here</html>", "text/html")
    with pytest.raises(FetchError, match="did not return a zip archive"):
        await fetch_dataset(settings.replace(source=url))
    assert leftovers(settings) == []


async def test_size_cap_stops_the_download(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    with pytest.raises(FetchError, match="larger than the 100-byte limit"):
        await fetch_dataset(settings.replace(source=url, max_download_bytes=100))
    assert leftovers(settings) == []


async def test_configured_checksum_mismatch_is_refused(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    with pytest.raises(FetchError, match="checksum .* does not match"):
        await fetch_dataset(settings.replace(source=url, checksum="sha256:" + "0" * 64))
    assert leftovers(settings) == []


async def test_configured_checksum_match_is_accepted(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    digest = hashlib.sha256(tiny_zip_bytes).hexdigest()
    folder = await fetch_dataset(settings.replace(source=url, checksum=f"sha256:{digest}"))
    assert folder.is_dir()


async def test_published_md5_is_verified(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    dataset_server.serve_bytes(
        "/ml-tiny.zip.md5", b"MD5 (ml-tiny.zip) = " + b"ab" * 16, "text/plain"
    )
    with pytest.raises(FetchError, match="expected md5:abab"):
        await fetch_dataset(settings.replace(source=url))

    good = hashlib.md5(tiny_zip_bytes).hexdigest().encode()
    dataset_server.serve_bytes("/ml-tiny.zip.md5", good + b"  ml-tiny.zip\n", "text/plain")
    assert (await fetch_dataset(settings.replace(source=url))).is_dir()


async def test_zip_slip_member_is_refused(
    settings: Settings, dataset_server: DatasetServer, tmp_path: Path
) -> None:
    evil = make_zip(
        {"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES, "../../escaped.txt": "gotcha"}
    )
    url = dataset_server.serve_bytes("/ml-tiny.zip", evil)
    with pytest.raises(DatasetError, match="unsafe path"):
        await fetch_dataset(settings.replace(source=url))
    assert not list(tmp_path.rglob("escaped.txt"))
    assert "ml-tiny" not in leftovers(settings)


async def test_absolute_member_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "abs.zip"
    path.write_bytes(
        make_zip(
            {"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES, "/tmp/owned.txt": "x"},
            folder="",
        )
    )
    with pytest.raises(DatasetError, match="unsafe path"):
        await fetch_dataset(settings.replace(source=str(path)))


async def test_symlink_member_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ml/ratings.csv", TINY_RATINGS)
        archive.writestr("ml/movies.csv", TINY_MOVIES)
        link = zipfile.ZipInfo("ml/passwd")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(DatasetError, match="symbolic link"):
        await fetch_dataset(settings.replace(source=str(path)))


async def test_absurd_uncompressed_size_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "bomb.zip"
    path.write_bytes(
        make_zip(
            {"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES, "padding.bin": b"\0" * 200_000}
        )
    )
    with pytest.raises(DatasetError, match="unpack to more than 100,000 bytes"):
        await fetch_dataset(settings.replace(source=str(path), max_extract_bytes=100_000))


async def test_archive_without_ratings_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "other.zip"
    path.write_bytes(make_zip({"movies.csv": TINY_MOVIES, "notes.txt": "hi"}))
    with pytest.raises(DatasetError, match="no ratings.csv"):
        await fetch_dataset(settings.replace(source=str(path)))


async def test_archive_of_no_known_layout_names_every_layout(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "other.zip"
    path.write_bytes(make_zip({"notes.txt": "hi"}))
    with pytest.raises(DatasetError, match="expected ratings.csv and movies.csv .* u.data"):
        await fetch_dataset(settings.replace(source=str(path)))


@pytest.mark.parametrize("release_name", sorted(LAYOUT_FILES))
async def test_a_zip_of_every_layout_is_extracted_and_loads(
    settings: Settings, tmp_path: Path, release_name: str
) -> None:
    path = tmp_path / f"{release_name}.zip"
    path.write_bytes(make_zip(dict(LAYOUT_FILES[release_name]), folder=release_name))
    folder = await fetch_dataset(settings.replace(source=str(path)))
    assert len(load(folder).ratings) > 0


async def test_a_release_name_downloads_from_grouplens(
    settings: Settings, dataset_server: DatasetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ml-10m.zip unpacks to ml-10M100K, not to a folder named after the zip.
    body = make_zip(dict(LAYOUT_FILES["ml-10m"]), folder="ml-10M100K")
    dataset_server.serve_bytes("/movielens/ml-10m.zip", body)
    monkeypatch.setattr(config, "GROUPLENS_URL", dataset_server.url("/movielens/{name}.zip"))
    folder = await fetch_dataset(settings.replace(source="ml-10m"))
    assert folder == settings.data_dir / "ml-10m"
    assert load(folder).movies.loc[20, "title"] == "Café Society: A Story"
    assert dataset_server.hits["/movielens/ml-10m.zip"] == 1


async def test_an_unknown_name_lists_the_known_releases(settings: Settings) -> None:
    with pytest.raises(FetchError, match="nor a known release name .*ml-25m") as info:
        await fetch_dataset(settings.replace(source="ml-5m"))
    assert "ml-25m" in info.value.hint


async def test_local_zip_is_extracted_once(settings: Settings, tiny_zip: Path) -> None:
    configured = settings.replace(source=str(tiny_zip))
    folder = await fetch_dataset(configured)
    marker = folder / ".movierec-extracted.json"
    stamp = marker.stat().st_mtime_ns
    assert await fetch_dataset(configured) == folder
    assert marker.stat().st_mtime_ns == stamp


async def test_local_zip_checksum_mismatch_is_refused(settings: Settings, tiny_zip: Path) -> None:
    with pytest.raises(FetchError, match="does not match"):
        await fetch_dataset(settings.replace(source=str(tiny_zip), checksum="md5:" + "1" * 32))


async def test_extracted_folder_is_used_in_place(settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "ratings.csv").write_text(TINY_RATINGS)
    (folder / "movies.csv").write_text(TINY_MOVIES)
    assert await fetch_dataset(settings.replace(source=str(folder))) == folder


async def test_missing_source_says_what_to_set(settings: Settings) -> None:
    with pytest.raises(FetchError, match="neither an http"):
        await fetch_dataset(settings)


async def test_unreachable_host_is_an_offline_error(settings: Settings) -> None:
    # Port 9 on loopback has no listener: the connection is refused at once.
    url = "http://127.0.0.1:9/ml-latest-small.zip"
    with pytest.raises(FetchError, match="could not connect") as info:
        await fetch_dataset(settings.replace(source=url))
    assert "MOVIELENS_SOURCE" in info.value.hint


async def test_concurrent_fetches_in_one_process_download_once(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    configured = settings.replace(source=url)
    folders = await asyncio.gather(*(fetch_dataset(configured) for _ in range(4)))
    assert len(set(folders)) == 1
    assert dataset_server.hits["/ml-tiny.zip"] == 1


def _fetch_in_process(settings: Settings) -> str:
    return str(asyncio.run(fetch_dataset(settings)))


async def test_workers_in_separate_processes_share_one_download(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(tiny_zip_bytes))})
        await response.prepare(request)
        for start in range(0, len(tiny_zip_bytes), 256):
            await response.write(tiny_zip_bytes[start : start + 256])
            await asyncio.sleep(0.01)
        return response

    url = dataset_server.serve("/ml-tiny.zip", slow)
    configured = settings.replace(source=url)
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(3, mp_context=get_context("spawn")) as pool:
        results = await asyncio.gather(
            *(loop.run_in_executor(pool, _fetch_in_process, configured) for _ in range(3))
        )
    assert len(set(results)) == 1
    assert dataset_server.hits["/ml-tiny.zip"] == 1
    assert len(load(Path(results[0])).ratings) == 11
