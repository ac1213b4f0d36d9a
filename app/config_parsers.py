"""How each setting's text becomes a value: the parsers app.config declares its settings with.

Each raises ValueError with a message starting "must ..." that Settings.from_env() shows after
the variable's name; int() and float() raise their own, shown as "has an invalid value".
"""

from __future__ import annotations

import re
from pathlib import Path

# Releases that MOVIELENS_SOURCE may name bare; each is app.config's GROUPLENS_URL with its name
# (ml-10m.zip unpacks to a folder called ml-10M100K, which the loader finds all the same).
RELEASES = ("ml-latest-small", "ml-latest", "ml-100k", "ml-1m", "ml-10m", "ml-25m", "ml-32m")
_RELEASE_LIKE = re.compile(r"^ml-[A-Za-z0-9._-]*$")
ALL_ALGORITHMS = ("all",)


def positive_int(raw: str) -> int:
    """A whole number of at least 1."""
    value = int(raw.strip())
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def non_negative_int(raw: str) -> int:
    """A whole number of at least 0."""
    value = int(raw.strip())
    if value < 0:
        raise ValueError("must be a whole number of at least 0")
    return value


def positive_float(raw: str) -> float:
    """A number greater than 0."""
    value = float(raw.strip())
    if not value > 0:
        raise ValueError("must be a number greater than 0")
    return value


def port(raw: str) -> int:
    """A TCP port, 1 to 65535."""
    value = int(raw.strip())
    if not 0 < value < 65536:
        raise ValueError("must be a port number from 1 to 65535")
    return value


def port_or_off(raw: str) -> int:
    """A TCP port, or 0 for none."""
    value = int(raw.strip())
    if not 0 <= value < 65536:
        raise ValueError("must be a port number from 1 to 65535, or 0 for off")
    return value


def switch(raw: str) -> bool:
    """on/off, true/false, yes/no or 1/0."""
    word = raw.strip().lower()
    if word not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ValueError("must be on or off")
    return word in ("on", "true", "1", "yes")


def log_format(raw: str) -> str:
    """text or json."""
    word = raw.strip().lower()
    if word not in ("text", "json"):
        raise ValueError("must be text or json")
    return word


def log_level(raw: str) -> str:
    """A logging level's name, upper case as the logging module spells it."""
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of debug, info, warning, error")
    return level


def algorithms(raw: str) -> tuple[str, ...]:
    """Names, lower case, each once; the engine checks them against its registry."""
    names = raw.strip().lower()
    if names in ("", "all"):
        return ALL_ALGORITHMS
    return tuple(dict.fromkeys(name.strip() for name in names.split(",") if name.strip()))


def checksum(raw: str) -> str:
    """Accept `sha256:<hex>`, `md5:<hex>` or bare hex (length picks the algorithm)."""
    given = raw.strip().lower()
    if not given:
        return ""
    algo, _, digest = given.rpartition(":")
    lengths = {"md5": 32, "sha256": 64}
    if not algo:
        algo = {32: "md5", 64: "sha256"}.get(len(digest), "")
    if algo not in lengths or len(digest) != lengths[algo] or not _is_hex(digest):
        raise ValueError("must be 'sha256:<64 hex digits>' or 'md5:<32 hex digits>'")
    return f"{algo}:{digest}"


def _is_hex(digits: str) -> bool:
    return all(c in "0123456789abcdef" for c in digits)


def source(raw: str) -> str:
    """A release name, URL, zip or folder; an unknown ml-... name that is no path is refused."""
    given = text(raw)
    if (
        _RELEASE_LIKE.match(given)
        and not given.lower().endswith(".zip")
        and given not in RELEASES
        and not Path(given).exists()
    ):
        raise ValueError(f"must be a known release name ({', '.join(RELEASES)}), a URL or a path")
    return given


def text(raw: str) -> str:
    """Any text that is not blank, without surrounding spaces."""
    given = raw.strip()
    if not given:
        raise ValueError("must not be empty")
    return given


def folder(raw: str) -> Path:
    """A path, not blank."""
    return Path(text(raw))


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)", re.ASCII)
_SECONDS_IN = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(raw: str) -> float:
    """A length of time in seconds: `90`, `90s`, `30m`, `48h` or `7d`, more than 0."""
    match = _DURATION.fullmatch(raw.strip().lower())
    if not match or float(match[1]) <= 0:
        raise ValueError("must be a length of time such as 3600, 30m, 48h or 7d")
    return float(match[1]) * _SECONDS_IN[match[2]]


DATABASE_SCHEMES = ("sqlite", "sqlite+aiosqlite", "postgresql", "postgres", "postgresql+asyncpg")


def database_url(raw: str) -> str:
    """A `sqlite:///path` or `postgresql://...` URL; empty means the SQLite file in DATA_DIR."""
    given = raw.strip()
    scheme = given.partition("://")[0].lower()
    if given and ("://" not in given or scheme not in DATABASE_SCHEMES):
        raise ValueError("must be a sqlite:///path or postgresql://user:password@host/name URL")
    return given
