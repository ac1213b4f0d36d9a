"""Settings: every knob the service has, declared once, read from the environment.

Each field of Settings carries its declaration (environment variable, parser, help) as field
metadata; the environment parsing, `movierec --help`, `as_environ()` and the README's
configuration table (`python -m app.config`) all come from it. The parsers are in
app/config_parsers.py. Parse once per process (`Settings.from_env()`) and hand the value down.
"""

from __future__ import annotations

import dataclasses
import os
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app import config_parsers as parse
from app.config_parsers import ALL_ALGORITHMS as ALL_ALGORITHMS
from app.config_parsers import RELEASES as RELEASES

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
DEFAULT_SOURCE = GROUPLENS_URL.format(name="ml-latest-small")


def release_url(source: str) -> str | None:
    """GroupLens' download URL when `source` is a known release name such as ml-25m."""
    return GROUPLENS_URL.format(name=source) if source in RELEASES else None


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    """One setting as declared: attribute, environment variable, default, parser, help.

    `help` is Markdown (the README's text); `shown` is the default as the README shows it.
    """

    name: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str
    shown: str

    @property
    def flag(self) -> str:
        """The command-line flag for it, where a command takes one: `--host` for `host`."""
        return "--" + self.name.replace("_", "-")

    def summary(self) -> str:
        """The first sentence of its help, in plain text (a flag's help)."""
        return _plain(self.help).split("; ")[0].split(". ")[0].rstrip(".")


def _declare(
    env: str, default: Any, parser: Callable[[str], Any], help: str, shown: str = ""
) -> Any:
    """A dataclass field with its default and, as metadata, the rest of its declaration."""
    return dataclasses.field(default=default, metadata={"setting": (env, parser, help, shown)})


@dataclass(frozen=True)
class Settings:
    """The service's configuration; build it with `from_env()` or directly in tests."""

    source: str = _declare(
        "MOVIELENS_SOURCE",
        DEFAULT_SOURCE,
        parse.source,
        "Where the dataset comes from: a GroupLens release name (`ml-latest-small`, `ml-latest`, "
        "`ml-100k`, `ml-1m`, `ml-10m`, `ml-25m`, `ml-32m`, meaning "
        "`https://files.grouplens.org/datasets/movielens/<name>.zip`), an http(s) URL of a "
        "MovieLens zip, a local zip, or an extracted folder.",
        "GroupLens' `ml-latest-small.zip` URL",
    )
    checksum: str = _declare(
        "MOVIELENS_CHECKSUM",
        "",
        parse.checksum,
        "Expected checksum of the zip (`sha256:<hex>` or `md5:<hex>`); overrides the `.md5` "
        "file published next to the download.",
    )
    data_dir: Path = _declare(  # noqa: RUF009 (a field; its default, a Path, is immutable)
        "DATA_DIR",
        Path("data"),
        parse.folder,
        "Folder for the downloaded zip and the extracted dataset (the cache).",
    )
    download_timeout: float = _declare(
        "DOWNLOAD_TIMEOUT",
        30.0,
        parse.positive_float,
        "Seconds to wait for a connection or for the next bytes of a download.",
    )
    download_retries: int = _declare(
        "DOWNLOAD_RETRIES",
        3,
        parse.non_negative_int,
        "Extra attempts after a failed download (network errors, timeouts, 5xx), with "
        "exponential backoff.",
    )
    download_backoff: float = _declare(
        "DOWNLOAD_BACKOFF",
        1.0,
        parse.positive_float,
        "Seconds before the first retry; doubles on each further retry.",
    )
    max_download_bytes: int = _declare(
        "DOWNLOAD_MAX_BYTES",
        1 << 30,
        parse.positive_int,
        "Largest download accepted, in bytes.",
        "`1073741824` (1 GiB)",
    )
    max_extract_bytes: int = _declare(
        "EXTRACT_MAX_BYTES",
        4 << 30,
        parse.positive_int,
        "Largest total uncompressed size accepted from a zip, in bytes.",
        "`4294967296` (4 GiB)",
    )
    host: str = _declare(
        "HOST",
        "127.0.0.1",
        parse.text,
        "Address the server listens on (`0.0.0.0` in the container).",
    )
    port: int = _declare("PORT", 8000, parse.port, "Port the server listens on.")
    workers: int = _declare(
        "WORKERS", 1, parse.positive_int, "Number of Hypercorn worker processes."
    )
    worker_timeout: float = _declare(
        "WORKER_TIMEOUT",
        10.0,
        parse.positive_float,
        "Seconds a worker may go without a heartbeat from its event loop (it sends one each "
        "second) before the supervisor kills it and starts another; with `WORKERS` above 1.",
    )
    compute_threads: int = _declare(
        "COMPUTE_THREADS",
        1,
        parse.positive_int,
        "Recommendations each worker computes at once; more requests wait their turn without "
        "a thread.",
    )
    algorithms: tuple[str, ...] = _declare(
        "ALGORITHMS",
        ALL_ALGORITHMS,
        parse.algorithms,
        "Algorithms to fit beside `original` (which always runs), comma-separated, or `all`; "
        "each is fitted in the background after start.",
    )
    ease_memory_budget: int = _declare(
        "EASE_MEMORY_BUDGET",
        2 << 30,
        parse.positive_int,
        "Bytes EASE's dense solve may take while fitting; with more films than that holds, the "
        "most rated that fit are modelled.",
    )
    result_cache: int = _declare(
        "RESULT_CACHE",
        4096,
        parse.non_negative_int,
        "Recent answers each worker keeps (they change only when the model does); 0 turns the "
        "cache off.",
    )
    result_cache_bytes: int = _declare(
        "RESULT_CACHE_BYTES",
        64 << 20,
        parse.positive_int,
        "Most memory, in bytes, the recent answers of each worker may take (each answer's size "
        "measured when it is stored); the least recently used go first.",
    )
    retry_backoff: float = _declare(
        "RETRY_BACKOFF",
        5.0,
        parse.positive_float,
        "Seconds before a failed build is tried again by itself; the pause doubles after each "
        "failure, up to 5 minutes. POST /retry (the page's Try again) retries at once, in "
        "every worker.",
    )
    log_level: str = _declare(
        "LOG_LEVEL",
        "INFO",
        parse.log_level,
        "Logging level: debug, info, warning or error (debug adds the access log).",
        "`info`",
    )
    log_format: str = _declare(
        "LOG_FORMAT",
        "text",
        parse.log_format,
        "`text` (readable lines) or `json` (one JSON object per line: `time`, `level`, "
        "`logger`, `message`, `pid`, `request_id` while answering a request, and the request's "
        "fields in access lines).",
    )
    access_log: bool = _declare(
        "ACCESS_LOG",
        False,
        parse.switch,
        "`on` logs one line per request (logger `app.access`: `method`, `path`, `route`, "
        "`status`, `duration_ms`, `client`, `request_id`); `LOG_LEVEL=debug` turns it on too.",
    )
    metrics_port: int = _declare(
        "METRICS_PORT",
        0,
        parse.port_or_off,
        "Port that serves Prometheus metrics at `/metrics`, on `HOST` beside `PORT`; the public "
        "port never serves them. See [Metrics and logs](#metrics-and-logs).",
        "`0` (off)",
    )
    database_url: str = _declare(
        "DATABASE_URL",
        "",
        parse.database_url,
        "Where movie nights are kept: `sqlite:///path/to/file` or "
        "`postgresql://user:password@host:5432/name` (which several replicas share). "
        "Migrations run at start, safely when several workers or replicas start at once.",
        "SQLite at `DATA_DIR/movienight.sqlite3` (WAL mode)",
    )
    night_ttl: float = _declare(
        "NIGHT_TTL",
        48 * 3600.0,
        parse.duration,
        "How long a movie night is kept without activity, in seconds or with a unit "
        "(`30m`, `48h`, `7d`); then it is deleted.",
        "`48h`",
    )
    night_create_limit: int = _declare(
        "NIGHT_CREATE_LIMIT",
        30,
        parse.positive_int,
        "Movie nights one client address may start in an hour, counted in the database so "
        "that the limit holds across workers and replicas.",
    )
    profile_ttl: float = _declare(
        "PROFILE_TTL",
        180 * 86400.0,
        parse.duration,
        "How long a saved profile (/me/<token>) is kept without being opened or changed, in "
        "seconds or with a unit (`30m`, `48h`, `180d`); then it is deleted.",
        "`180d`",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every declared setting from the environment; a bad value raises ConfigError."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = environ.get(setting.env)
            if raw is None:
                continue
            try:
                values[setting.name] = setting.parse(raw)
            except ValueError as exc:
                reason = str(exc) if _is_own_message(exc) else "has an invalid value"
                raise ConfigError(f"{setting.env}={raw!r} {reason}") from None
        settings = cls(**values)
        if settings.metrics_port == settings.port:
            raise ConfigError(f"METRICS_PORT={settings.metrics_port} must differ from PORT")
        return settings

    def enabled(self, algorithm: str) -> bool:
        """Whether ALGORITHMS lets this algorithm be fitted."""
        return self.algorithms == ALL_ALGORITHMS or algorithm in self.algorithms

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed."""
        return dataclasses.replace(self, **changes)

    def as_environ(self) -> dict[str, str]:
        """These settings as environment variables: `from_env()` of them gives them back.

        How a child process (the background `movierec build`) gets the same settings.
        """
        return {s.env: _as_text(getattr(self, s.name)) for s in SETTINGS}


def _as_text(value: Any) -> str:
    """A value as its variable would spell it: the parsers read it back to the same value."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _declared(field: dataclasses.Field[Any]) -> Setting:
    env, parser, help, shown = field.metadata["setting"]
    default_text = _as_text(field.default)
    shown = shown or (f"`{default_text}`" if default_text else "(none)")
    return Setting(field.name, env, field.default, parser, help, shown)


SETTINGS: tuple[Setting, ...] = tuple(_declared(f) for f in dataclasses.fields(Settings))


def _is_own_message(exc: ValueError) -> bool:
    # Our parsers raise readable messages; int()/float() raise "invalid literal ..." instead.
    return str(exc).startswith("must ")


def readme_table() -> str:
    """The README's configuration table, one row per setting."""
    rows = [f"| `{s.env}` | {s.shown} | {s.help} |" for s in SETTINGS]
    return "\n".join(["| Variable | Default | Meaning |", "|---|---|---|", *rows])


def help_text(width: int = 79) -> str:
    """Every setting as `movierec --help` lists it: variable, default and meaning, plain text."""
    lines = ["environment (command-line flags override it):"]
    for setting in SETTINGS:
        lines.append(f"  {setting.env}, default: {_plain(setting.shown)}")
        lines += textwrap.wrap(
            _plain(setting.help), width, initial_indent=" " * 6, subsequent_indent=" " * 6
        )
    return "\n".join(lines)


def _plain(markdown: str) -> str:
    """Markdown's code spans and links as plain text."""
    return re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown).replace("`", "")


if __name__ == "__main__":
    print(readme_table())
