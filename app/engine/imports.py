"""Importing a rating history: a file read, matched to the served catalogue, and summed up.

Blocking; the Service runs it off the event loop. Nothing is kept: the answer holds the
(film, rating) pairs and the rows that were not matched, never the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.data.imports import (
    AMBIGUOUS,
    FORMAT_LABELS,
    NOT_FOUND,
    REPEATED,
    UNRATED,
    InvalidImport,
    Unmatched,
    match,
    read_import,
)
from app.engine.model import Model
from app.engine.queries import MAX_RATINGS


@dataclass(frozen=True)
class ImportResult:
    """What an import found: the format, how many rows, the ratings matched and the rest."""

    format: str
    rows: int
    ratings: tuple[tuple[int, float], ...]
    unmatched: tuple[Unmatched, ...]

    @property
    def source(self) -> str:
        """Where the file came from, as a page names it ("IMDb", "Letterboxd")."""
        return FORMAT_LABELS[self.format]

    @property
    def matched(self) -> int:
        """Films found and rated (each film once)."""
        return len(self.ratings)

    def summary(self) -> str:
        """In words: "812 of 845 films found; 33 are not in this catalogue"."""
        counts = {kind: 0 for kind in (NOT_FOUND, AMBIGUOUS, UNRATED, REPEATED)}
        for row in self.unmatched:
            counts[row.kind] += 1
        parts = [
            _count(counts[NOT_FOUND], "is not in this catalogue", "are not in this catalogue"),
            _count(counts[AMBIGUOUS], "could be more than one film", "could be more than one film"),
            _count(counts[UNRATED], "has no rating", "have no rating"),
            _count(counts[REPEATED], "repeats a film rated later", "repeat a film rated later"),
        ]
        said = [part for part in parts if part]
        found = f"{self.matched:,} of {self.rows:,} film{'' if self.rows == 1 else 's'} found"
        if not said:
            return found
        tail = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " and " + said[-1]
        return f"{found}; {tail}"


def _count(number: int, one: str, many: str) -> str:
    return "" if number == 0 else f"{number:,} {one if number == 1 else many}"


def import_ratings(model: Model, data: bytes) -> ImportResult:
    """Read `data` as an export and match it to the model's catalogue (blocking).

    InvalidImport, naming the row and column where it can, for a file that is not one of the
    formats, has a bad value, or holds more films than a visitor may rate.
    """
    matched = match(read_import(data), model.catalogue)
    if len(matched.ratings) > MAX_RATINGS:
        raise InvalidImport(
            f"The file rates {len(matched.ratings):,} films of this catalogue; "
            f"at most {MAX_RATINGS:,} can be used at once."
        )
    return ImportResult(matched.format, matched.rows, matched.ratings, matched.unmatched)


@dataclass(frozen=True)
class Joined:
    """A visitor's ratings with an import's added; `replaced` are films the import re-rated."""

    pairs: tuple[tuple[int, float], ...]
    replaced: tuple[int, ...]


def join_ratings(
    existing: Sequence[tuple[int, float]], imported: Sequence[tuple[int, float]]
) -> Joined:
    """The import joins the ratings kept so far; where both rate a film, the import wins."""
    mine = dict(existing)
    replaced = tuple(m for m, rating in imported if m in mine and mine[m] != rating)
    mine.update(imported)
    return Joined(tuple(mine.items()), replaced)
