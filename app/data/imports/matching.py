"""Rows of an import matched to the catalogue's films: by id where the file has one, else by
title and year. A title that fits more than one film is reported, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.data.catalogue import Catalogue
from app.data.imports.formats import ImportRow, ParsedImport
from app.data.imports.titles import PRIMARY, MatchIndex, index_of, title_keys, year_of

NOT_FOUND = "not_found"
AMBIGUOUS = "ambiguous"
UNRATED = "unrated"
REPEATED = "repeated"
MOST_CANDIDATES_NAMED = 4


@dataclass(frozen=True)
class Unmatched:
    """A row whose rating is not imported: where it is, how it names its film, and why.

    `kind` is one of NOT_FOUND, AMBIGUOUS, UNRATED or REPEATED; `reason` says it in words.
    """

    row: int
    title: str | None
    year: int | None
    kind: str
    reason: str


@dataclass(frozen=True)
class Matched:
    """An import matched: (movie_id, rating) for each film found, in file order, and the rest.

    `rows` counts the file's rows; each is either a rating or unmatched.
    """

    format: str
    rows: int
    ratings: tuple[tuple[int, float], ...]
    unmatched: tuple[Unmatched, ...]


def match(parsed: ParsedImport, catalogue: Catalogue) -> Matched:
    """Find each row's film; a film rated twice keeps its last row's rating."""
    index = index_of(catalogue)
    kept: dict[int, ImportRow] = {}
    unmatched: list[Unmatched] = []
    for row in parsed.rows:
        if row.rating is None:
            unmatched.append(_unmatched(row, UNRATED, "The file gives no rating for it."))
            continue
        found = _find(row, index, catalogue)
        if isinstance(found, Unmatched):
            unmatched.append(found)
            continue
        earlier = kept.pop(found, None)
        if earlier is not None:
            unmatched.append(
                _unmatched(
                    earlier, REPEATED, f"The same film as row {row.row:,}, whose rating is kept."
                )
            )
        kept[found] = row
    movie_ids = catalogue.movie_ids
    ratings = tuple(
        (int(movie_ids[position]), float(row.rating or 0))
        for position, row in sorted(kept.items(), key=lambda item: item[1].row)
    )
    unmatched.sort(key=lambda item: item.row)
    return Matched(parsed.format, len(parsed.rows), ratings, tuple(unmatched))


def _unmatched(row: ImportRow, kind: str, reason: str) -> Unmatched:
    named = row.title or (f"tt{row.imdb_id:07d}" if row.imdb_id is not None else None)
    if named is None and row.movie_id is not None:
        named = f"movie {row.movie_id}"
    return Unmatched(row.row, named, row.year, kind, reason)


def _find(row: ImportRow, index: MatchIndex, catalogue: Catalogue) -> int | Unmatched:
    """The catalogue position of the row's film, or why there is none."""
    if row.movie_id is not None:
        position = catalogue.position(row.movie_id)
        if position is not None:
            return position
    if row.imdb_id is not None:
        found = index.imdb.get(row.imdb_id)
        if found is not None:
            return found
    if row.movie_id is not None or row.imdb_id is not None:
        return _unmatched(row, NOT_FOUND, "Not in this catalogue.")
    if not row.title:
        return _unmatched(row, NOT_FOUND, "The row names no film.")
    return _by_title(row, index, catalogue)


def _by_title(row: ImportRow, index: MatchIndex, catalogue: Catalogue) -> int | Unmatched:
    candidates: dict[int, int] = {}
    for key, _ in title_keys(row.title or ""):
        for position, kind in index.titles.get(key, ()):
            candidates[position] = min(kind, candidates.get(position, kind))
    if not candidates:
        return _unmatched(row, NOT_FOUND, "Not in this catalogue.")
    pool = _closest(candidates, row.year, catalogue)
    if not pool:
        return _unmatched(row, NOT_FOUND, "Not in this catalogue (no film of that title then).")
    if len(pool) == 1:
        return pool[0]
    named = ", ".join(_name(catalogue, position) for position in pool[:MOST_CANDIDATES_NAMED])
    more = len(pool) - MOST_CANDIDATES_NAMED
    tail = f" and {more} more" if more > 0 else ""
    return _unmatched(row, AMBIGUOUS, f"More than one film fits: {named}{tail}. Rate it by hand.")


def _closest(candidates: dict[int, int], year: int | None, catalogue: Catalogue) -> list[int]:
    """The candidates that fit best: by main title in the year given, then by main title a
    year either side or by another title in that year (equally), then by another title a
    year either side; films without a year only when the row has none or nothing else fits.
    """
    positions = sorted(candidates)
    if year is None:
        primary = [position for position in positions if candidates[position] == PRIMARY]
        return primary or positions
    fits: dict[int, list[int]] = {}
    for position in positions:
        gap = _gap(year_of(catalogue, position), year)
        if gap is not None and gap <= 1:
            fits.setdefault(gap + candidates[position], []).append(position)
    if fits:
        return fits[min(fits)]
    return [position for position in positions if year_of(catalogue, position) is None]


def _gap(film_year: int | None, year: int) -> int | None:
    return None if film_year is None else abs(film_year - year)


def _name(catalogue: Catalogue, position: int) -> str:
    movie = catalogue.at(position)
    return f"{movie.title} ({movie.year})" if movie.year else movie.title
