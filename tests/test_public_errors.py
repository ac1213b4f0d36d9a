"""Every way the data can fail says so twice: fully for the log, and for clients without a
server path or URL (the settings, DATA_DIR and MOVIELENS_SOURCE, are named instead)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from aiohttp import web

from app.config import Settings
from app.data.errors import DatasetError, FetchError, StorageError
from app.engine.build import build_model
from tests.conftest import DatasetServer, make_zip
from tests.tiny import TINY_MOVIES, TINY_RATINGS

# A URL, or an absolute path: what a client must never read.
SERVER_DETAIL = re.compile(r"https?://|(?<![\w.])/[\w.-]")


def quiet(what: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


async def failure(settings: Settings) -> DatasetError:
    """The DatasetError the server's build meets with these settings."""
    with pytest.raises(DatasetError) as info:
        await build_model(settings, quiet, threading.Event())
    return info.value


def assert_public(error: DatasetError, *secrets: str) -> None:
    """The public text names no secret, no URL and no path; the log's text keeps them."""
    assert error.public, "a failure must say something to clients"
    assert not SERVER_DETAIL.search(error.public), error.public
    for secret in secrets:
        assert secret not in error.public
        assert secret in str(error)


async def test_a_missing_download_names_the_setting_not_the_url(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    url = dataset_server.url("/nope.zip")
    error = await failure(settings.replace(source=url))
    assert isinstance(error, FetchError)
    assert_public(error, url)
    assert error.public == "Downloading MOVIELENS_SOURCE failed: the server answered 404 Not Found."


async def test_a_download_that_is_not_a_zip_names_the_setting(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", b"<html>not a zip</html>", "text/html")
    error = await failure(settings.replace(source=url))
    assert_public(error, url)
    assert "did not return a zip archive" in error.public


async def test_a_wrong_checksum_names_the_setting(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    error = await failure(settings.replace(source=url, checksum="md5:" + "ab" * 16))
    assert_public(error, url)
    assert "checksum of MOVIELENS_SOURCE does not match" in error.public


async def test_a_download_over_the_limit_names_the_setting(
    settings: Settings, dataset_server: DatasetServer, tiny_zip_bytes: bytes
) -> None:
    url = dataset_server.serve_bytes("/ml-tiny.zip", tiny_zip_bytes)
    error = await failure(settings.replace(source=url, max_download_bytes=100))
    assert_public(error, url)


async def test_a_server_that_keeps_failing_names_the_setting(
    settings: Settings, dataset_server: DatasetServer
) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503)

    url = dataset_server.serve("/ml-tiny.zip", broken)
    error = await failure(settings.replace(source=url))
    assert_public(error, url)
    assert error.public.startswith("Could not download MOVIELENS_SOURCE after 2 attempt(s)")


async def test_a_local_file_that_is_not_a_zip_names_the_setting(
    settings: Settings, tmp_path: Path
) -> None:
    damaged = tmp_path / "ml-tiny.zip"
    damaged.write_bytes(b"PK\x03\x04 and then nothing")
    error = await failure(settings.replace(source=str(damaged)))
    assert_public(error, str(damaged))
    assert error.public == "MOVIELENS_SOURCE is not a valid zip archive."


async def test_a_source_that_is_nothing_names_the_setting(
    settings: Settings, tmp_path: Path
) -> None:
    nowhere = tmp_path / "nowhere"
    error = await failure(settings.replace(source=str(nowhere)))
    assert_public(error, str(nowhere))
    assert "neither an http(s) URL" in error.public


async def test_a_zip_without_the_ratings_says_which_file_is_missing(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "ml-tiny.zip"
    source.write_bytes(make_zip({"movies.csv": TINY_MOVIES}))
    error = await failure(settings.replace(source=str(source)))
    assert_public(error)
    assert "no ratings.csv" in error.public


async def test_a_folder_without_the_files_names_the_setting(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a release")
    error = await failure(settings.replace(source=str(folder)))
    assert_public(error, str(folder))
    assert "found in MOVIELENS_SOURCE" in error.public


async def test_malformed_ratings_name_the_file_only(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "ml-tiny.zip"
    bad = TINY_RATINGS.replace("5.0", "9.0", 1)
    assert bad != TINY_RATINGS
    source.write_bytes(make_zip({"ratings.csv": bad, "movies.csv": TINY_MOVIES}))
    error = await failure(settings.replace(source=str(source)))
    assert_public(error)
    assert "ratings.csv has a rating of 9.0" in error.public


async def test_a_data_dir_that_is_a_file_says_so(settings: Settings, tiny_zip: Path) -> None:
    settings.data_dir.write_text("a file where the data folder should be")
    error = await failure(settings.replace(source=str(tiny_zip)))
    assert isinstance(error, StorageError)
    assert_public(error, str(settings.data_dir))
    assert error.public == "DATA_DIR is a file, not a folder."
    assert "DATA_DIR" in error.hint


async def test_a_data_dir_inside_a_file_names_the_setting(
    settings: Settings, tiny_zip: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    error = await failure(settings.replace(source=str(tiny_zip), data_dir=blocker / "data"))
    assert isinstance(error, StorageError)
    assert_public(error, str(blocker))
    assert error.public.startswith("Could not read or write the dataset in DATA_DIR:")
