"""What a snapshot holds and how it was made: its manifest (kept in its header), its source."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.data.archive import extraction_digest


@dataclass(frozen=True)
class Fit:
    """One algorithm in a snapshot: the parameters it was fitted with, the time, the size.

    `reason` says why it is left out (it did not fit this dataset), when it is.
    """

    name: str
    params: dict[str, Any]
    seconds: float = 0.0
    bytes: int = 0
    reason: str = ""


@dataclass(frozen=True)
class Manifest:
    """What a snapshot holds and how it was made."""

    build_id: str
    built_at: str
    release: str
    source: str
    ratings: int
    fits: tuple[Fit, ...] = ()
    seconds: float = 0.0
    bytes: int = 0
    phases: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Manifest:
        """Read the manifest back from a snapshot's header."""
        fits = tuple(Fit(**fit) for fit in meta.get("fits", ()))
        known = {f for f in cls.__dataclass_fields__ if f != "fits"}
        return cls(**{k: v for k, v in meta.items() if k in known}, fits=fits)


def manifest_table(manifest: Manifest) -> str:
    """The summary `movierec build` prints: each algorithm's fit time, size and parameters."""
    lines = [
        f"snapshot {manifest.build_id} of {manifest.release}, built {manifest.built_at}: "
        f"{manifest.ratings:,} ratings, {manifest.bytes / 2**20:,.1f} MiB, "
        f"{manifest.seconds:.1f} s in all",
        "",
        f"| {'algorithm':<18} | {'fit s':>8} | {'MiB':>9} | parameters or why left out |",
        f"|{'-' * 20}|{'-' * 10}|{'-' * 11}|{'-' * 28}|",
    ]
    for fit in manifest.fits:
        detail = fit.reason or ", ".join(f"{k}={v}" for k, v in fit.params.items()) or "-"
        lines.append(
            f"| {fit.name:<18} | {fit.seconds:>8.2f} | {fit.bytes / 2**20:>9.1f} | {detail} |"
        )
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in manifest.phases.items())
    return "\n".join([*lines, "", f"phases: {phases}"])


def fingerprint(release: Path) -> str:
    """What a snapshot is built from: the zip's SHA-256 when we extracted it, else the files.

    The zip's digest is the same on every machine, so a snapshot built by a job elsewhere
    serves here; a folder given as the source is fingerprinted by its files' sizes and times.
    """
    digest = extraction_digest(release)
    if digest:
        return f"zip:{digest}"
    files = sorted(p for p in release.rglob("*") if p.is_file() and not p.name.startswith("."))
    listing = [(str(p.relative_to(release)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps([str(release.resolve()), listing]).encode()).hexdigest()
