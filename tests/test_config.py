"""Settings: one declared table, read from the environment, every one documented."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

import app.__main__ as cli
from app.config import RELEASES, SETTINGS, ConfigError, Settings, readme_table, release_url
from app.engine import check_algorithms
from app.recommender import ALGORITHMS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.source.endswith("ml-latest-small.zip")
    assert settings.port == 8000


def test_values_are_parsed_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "MOVIELENS_SOURCE": " /srv/ml.zip ",
            "DATA_DIR": "/var/cache/ml",
            "PORT": "9000",
            "WORKERS": "2",
            "DOWNLOAD_TIMEOUT": "2.5",
            "MOVIELENS_CHECKSUM": "A" * 32,
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.source == "/srv/ml.zip"
    assert settings.data_dir == Path("/var/cache/ml")
    assert (settings.port, settings.workers, settings.download_timeout) == (9000, 2, 2.5)
    assert settings.checksum == "md5:" + "a" * 32
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("PORT", "eighty", "PORT='eighty' has an invalid value"),
        ("PORT", "70000", "PORT='70000' must be a port number"),
        ("WORKERS", "0", "WORKERS='0' must be a whole number of at least 1"),
        ("DOWNLOAD_TIMEOUT", "-1", "DOWNLOAD_TIMEOUT='-1' must be a number greater than 0"),
        ("MOVIELENS_CHECKSUM", "sha256:xyz", "MOVIELENS_CHECKSUM='sha256:xyz' must be"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL='loud' must be one of"),
        ("MOVIELENS_SOURCE", "  ", "MOVIELENS_SOURCE='  ' must not be empty"),
    ],
)
def test_a_bad_value_names_the_variable(env: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env({env: value})


def test_a_release_name_is_kept_and_maps_to_grouplens() -> None:
    settings = Settings.from_env({"MOVIELENS_SOURCE": "ml-25m"})
    assert settings.source == "ml-25m"
    assert release_url("ml-25m") == "https://files.grouplens.org/datasets/movielens/ml-25m.zip"
    assert release_url("/srv/ml-25m") is None


def test_an_unknown_release_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"MOVIELENS_SOURCE='ml-5m' must be a known") as info:
        Settings.from_env({"MOVIELENS_SOURCE": "ml-5m"})
    assert all(name in str(info.value) for name in RELEASES)


def test_a_folder_named_like_a_release_is_still_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ml-mine").mkdir()
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"MOVIELENS_SOURCE": "ml-mine"}).source == "ml-mine"


def test_each_field_is_declared_once_with_its_variable() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in dataclasses.fields(Settings)]
    assert [s.default for s in SETTINGS] == [f.default for f in dataclasses.fields(Settings)]
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)
    assert all(s.help and s.shown for s in SETTINGS)


def test_the_readme_table_is_the_declaration() -> None:
    readme = README.read_text(encoding="utf-8")
    start = readme.index("| Variable | Default | Meaning |")
    table = readme[start : readme.index("\n\n", start)]
    # On a difference: `python -m app.config` prints the table to paste into README.md.
    assert table == readme_table()
    assert table.count("\n| `") == len(SETTINGS)


def test_help_lists_every_setting_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["serve", "--help"])
    assert info.value.code == 0
    shown = capsys.readouterr().out
    assert all(f"  {s.env}, default: " in shown for s in SETTINGS)
    assert "DOWNLOAD_MAX_BYTES, default: 1073741824 (1 GiB)" in shown
    assert "--port PORT" in shown and "(env PORT)" in shown


def test_a_variable_reads_back_as_the_value_it_was_written_from() -> None:
    environ = Settings(access_log=True, retry_backoff=0.5, download_timeout=30.0).as_environ()
    assert (environ["ACCESS_LOG"], environ["RETRY_BACKOFF"]) == ("on", "0.5")
    assert environ["DOWNLOAD_TIMEOUT"] == "30" and environ["ALGORITHMS"] == "all"
    assert Settings.from_env(environ).access_log is True


def test_algorithm_names_are_checked_by_the_engine_not_the_config() -> None:
    assert Settings.from_env({"ALGORITHMS": "Nope, ease"}).algorithms == ("nope", "ease")
    with pytest.raises(ConfigError, match=r"ALGORITHMS must list known algorithms") as info:
        check_algorithms(Settings(algorithms=("nope",)))
    assert "unknown: nope" in str(info.value)
    assert all(name in str(info.value) for name in ALGORITHMS)
    check_algorithms(Settings(algorithms=("original", "ease")))
    check_algorithms(Settings())


def test_importing_the_config_loads_neither_pandas_nor_quart() -> None:
    code = "import app.config, sys; print('pandas' in sys.modules, 'quart' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=README.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "False False"


def test_settings_travel_to_a_child_process_through_the_environment(tmp_path: Path) -> None:
    settings = Settings(
        source=str(tmp_path / "x.zip"),
        data_dir=tmp_path,
        algorithms=("original", "ease"),
        download_backoff=0.25,
        checksum="md5:" + "0" * 32,
    )
    assert Settings.from_env(settings.as_environ()) == settings
    assert Settings.from_env(Settings().as_environ()) == Settings()
