"""Settings: every knob the service has, declared once, read from the environment."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/{name}.zip"
DEFAULT_SOURCE = GROUPLENS_URL.format(name="ml-latest-small")
# Releases that MOVIELENS_SOURCE may name bare; each is GROUPLENS_URL with its name
# (ml-10m.zip unpacks to a folder called ml-10M100K, which the loader finds all the same).
RELEASES = ("ml-latest-small", "ml-latest", "ml-100k", "ml-1m", "ml-10m", "ml-25m", "ml-32m")
_RELEASE_LIKE = re.compile(r"^ml-[A-Za-z0-9._-]*$")


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


@dataclass(frozen=True)
class Setting:
    """One row of the settings table: attribute, environment variable, default, parser, help."""

    name: str
    env: str
    default: Any
    parse: Callable[[str], Any]
    help: str


def _positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


ALL_ALGORITHMS = ("all",)


def _algorithms(raw: str) -> tuple[str, ...]:
    """Names, lower case, each once; the engine checks them against its registry."""
    text = raw.strip().lower()
    if text in ("", "all"):
        return ALL_ALGORITHMS
    return tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def _positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not value > 0:
        raise ValueError("must be a number greater than 0")
    return value


def _port(raw: str) -> int:
    value = int(raw.strip())
    if not 0 < value < 65536:
        raise ValueError("must be a port number from 1 to 65535")
    return value


def _port_or_off(raw: str) -> int:
    value = int(raw.strip())
    if not 0 <= value < 65536:
        raise ValueError("must be a port number from 1 to 65535, or 0 for off")
    return value


def _switch(raw: str) -> bool:
    text = raw.strip().lower()
    if text not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ValueError("must be on or off")
    return text in ("on", "true", "1", "yes")


def _log_format(raw: str) -> str:
    text = raw.strip().lower()
    if text not in ("text", "json"):
        raise ValueError("must be text or json")
    return text


def _checksum(raw: str) -> str:
    """Accept `sha256:<hex>`, `md5:<hex>` or bare hex (length picks the algorithm)."""
    text = raw.strip().lower()
    if not text:
        return ""
    algo, _, digest = text.rpartition(":")
    lengths = {"md5": 32, "sha256": 64}
    if not algo:
        algo = {32: "md5", 64: "sha256"}.get(len(digest), "")
    if algo not in lengths or len(digest) != lengths[algo] or not _is_hex(digest):
        raise ValueError("must be 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'")
    return f"{algo}:{digest}"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of debug, info, warning, error")
    return level


def release_url(source: str) -> str | None:
    """GroupLens' download URL when `source` is a known release name such as ml-25m."""
    return GROUPLENS_URL.format(name=source) if source in RELEASES else None


def _source(raw: str) -> str:
    """A release name, URL, zip or folder; an unknown ml-... name that is no path is refused."""
    text = _text(raw)
    if (
        _RELEASE_LIKE.match(text)
        and not text.lower().endswith(".zip")
        and text not in RELEASES
        and not Path(text).exists()
    ):
        raise ValueError(f"must be a known release name ({', '.join(RELEASES)}), a URL or a path")
    return text


def _text(raw: str) -> str:
    text = raw.strip()
    if not text:
        raise ValueError("must not be empty")
    return text


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "source",
        "MOVIELENS_SOURCE",
        DEFAULT_SOURCE,
        _source,
        "Where the dataset comes from: a GroupLens release name (ml-latest-small, ml-latest, "
        "ml-100k, ml-1m, ml-10m, ml-25m, ml-32m), an http(s) URL of a MovieLens zip, a local "
        "zip, or an extracted folder.",
    ),
    Setting(
        "checksum",
        "MOVIELENS_CHECKSUM",
        "",
        _checksum,
        "Expected checksum of the zip (`sha256:<hex>` or `md5:<hex>`); overrides the "
        "`.md5` file published next to the download.",
    ),
    Setting(
        "data_dir",
        "DATA_DIR",
        Path("data"),
        lambda raw: Path(_text(raw)),
        "Folder for the downloaded zip and the extracted dataset (the cache).",
    ),
    Setting(
        "download_timeout",
        "DOWNLOAD_TIMEOUT",
        30.0,
        _positive_float,
        "Seconds to wait for a connection or for the next bytes of a download.",
    ),
    Setting(
        "download_retries",
        "DOWNLOAD_RETRIES",
        3,
        _non_negative_int,
        "Extra attempts after a failed download (network errors, timeouts, 5xx), "
        "with exponential backoff.",
    ),
    Setting(
        "download_backoff",
        "DOWNLOAD_BACKOFF",
        1.0,
        _positive_float,
        "Seconds before the first retry; doubles on each further retry.",
    ),
    Setting(
        "max_download_bytes",
        "DOWNLOAD_MAX_BYTES",
        1 << 30,
        _positive_int,
        "Largest download accepted, in bytes.",
    ),
    Setting(
        "max_extract_bytes",
        "EXTRACT_MAX_BYTES",
        4 << 30,
        _positive_int,
        "Largest total uncompressed size accepted from a zip, in bytes.",
    ),
    Setting(
        "host",
        "HOST",
        "127.0.0.1",
        _text,
        "Address the server listens on (`0.0.0.0` in the container).",
    ),
    Setting("port", "PORT", 8000, _port, "Port the server listens on."),
    Setting("workers", "WORKERS", 1, _positive_int, "Number of Hypercorn worker processes."),
    Setting(
        "compute_threads",
        "COMPUTE_THREADS",
        1,
        _positive_int,
        "Recommendations each worker computes at once; more requests wait their turn "
        "without a thread.",
    ),
    Setting(
        "algorithms",
        "ALGORITHMS",
        ALL_ALGORITHMS,
        _algorithms,
        "Algorithms to fit beside `original` (which always runs), comma-separated, or `all`; "
        "each is fitted in the background after start.",
    ),
    Setting(
        "ease_memory_budget",
        "EASE_MEMORY_BUDGET",
        2 << 30,
        _positive_int,
        "Bytes EASE's dense solve may take while fitting; with more films than that holds, "
        "the most rated that fit are modelled.",
    ),
    Setting(
        "result_cache",
        "RESULT_CACHE",
        4096,
        _non_negative_int,
        "Recent answers each worker keeps (they change only when the model does); 0 turns "
        "the cache off.",
    ),
    Setting(
        "result_cache_bytes",
        "RESULT_CACHE_BYTES",
        64 << 20,
        _positive_int,
        "Most memory, in bytes, the recent answers of each worker may take (estimated); the "
        "least recently used go first.",
    ),
    Setting(
        "retry_backoff",
        "RETRY_BACKOFF",
        5.0,
        _positive_float,
        "Seconds before a failed build is tried again by itself; the pause doubles after each "
        "failure, up to 5 minutes. POST /retry (the page's Try again) retries at once, in "
        "every worker.",
    ),
    Setting(
        "log_level",
        "LOG_LEVEL",
        "INFO",
        _log_level,
        "Logging level: debug, info, warning or error.",
    ),
    Setting(
        "log_format",
        "LOG_FORMAT",
        "text",
        _log_format,
        "`text` (one readable line per record) or `json` (one JSON object per line: time, "
        "level, logger, message, the request id, and the request's fields in access lines).",
    ),
    Setting(
        "access_log",
        "ACCESS_LOG",
        False,
        _switch,
        "`on` logs one line per request (logger `app.access`: method, path, route, status, "
        "duration, request id); `LOG_LEVEL=debug` turns it on too.",
    ),
    Setting(
        "metrics_port",
        "METRICS_PORT",
        0,
        _port_or_off,
        "Port that serves Prometheus metrics at `/metrics` (on `HOST`, apart from the public "
        "port, which never serves them); `0`, the default, serves none.",
    ),
)


@dataclass(frozen=True)
class Settings:
    """The service's configuration; build it with `from_env()` or directly in tests."""

    source: str = DEFAULT_SOURCE
    checksum: str = ""
    data_dir: Path = Path("data")
    download_timeout: float = 30.0
    download_retries: int = 3
    download_backoff: float = 1.0
    max_download_bytes: int = 1 << 30
    max_extract_bytes: int = 4 << 30
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    compute_threads: int = 1
    algorithms: tuple[str, ...] = ALL_ALGORITHMS
    ease_memory_budget: int = 2 << 30
    result_cache: int = 4096
    result_cache_bytes: int = 64 << 20
    retry_backoff: float = 5.0
    log_level: str = "INFO"
    log_format: str = "text"
    access_log: bool = False
    metrics_port: int = 0

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
        environ = {}
        for setting in SETTINGS:
            value = getattr(self, setting.name)
            if isinstance(value, tuple):
                value = ",".join(value)
            environ[setting.env] = str(value)
        return environ


def _is_own_message(exc: ValueError) -> bool:
    # Our parsers raise readable messages; int()/float() raise "invalid literal ..." instead.
    return str(exc).startswith("must ")


def _check_table_matches_fields() -> None:
    fields = {f.name: f.default for f in dataclasses.fields(Settings)}
    declared = {s.name: s.default for s in SETTINGS}
    if fields != declared:
        raise RuntimeError("Settings fields and the SETTINGS table disagree")


_check_table_matches_fields()
