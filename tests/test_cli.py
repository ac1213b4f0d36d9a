"""`python -m app` / `movierec`: flags override the environment and are validated alike."""

from __future__ import annotations

import pytest

import app.__main__ as cli
from app.config import Settings


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Settings] = []
    monkeypatch.setattr(cli, "serve", lambda settings: seen.append(settings) or 0)
    monkeypatch.setenv("PORT", "9100")
    monkeypatch.setenv("WORKERS", "3")
    assert cli.main(["--host", "0.0.0.0", "--port", "8123"]) == 0
    assert (seen[0].host, seen[0].port, seen[0].workers) == ("0.0.0.0", 8123, 3)
    assert cli.main(["serve"]) == 0 and seen[1].port == 9100


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "0"], "PORT='0' must be a port number"),
        (["serve", "--workers", "many"], "WORKERS='many' has an invalid value"),
    ],
)
def test_bad_flags_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOWNLOAD_RETRIES", "-1")
    with pytest.raises(SystemExit):
        cli.main([])
    assert "DOWNLOAD_RETRIES='-1'" in capsys.readouterr().err
