"""What a snapshot holds and how it was made: its manifest, kept in the snapshot's header."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
