"""The exports an import understands, recognised by their header, and their rows read.

- IMDb's "Your ratings" export: `Const` (tt ids) and `Your Rating` (1-10), with `Title` and
  `Year`; 1-10 becomes half stars (2 -> 1.0, 9 -> 4.5, 1 -> 0.5).
- Letterboxd's `ratings.csv` (`Date, Name, Year, Letterboxd URI, Rating`, 0.5-5) and
  `watched.csv` (the same without `Rating`); `diary.csv` reads like ratings.csv.
- MovieLens: the dataset's `userId, movieId, rating, timestamp` (one user's rows), the
  movielens.org export (`movie_id, imdb_id, tmdb_id, rating, average_rating, title`) and a
  plain `movieId, rating`.
Column names are compared without case, spaces or underscores ("Your Rating", "movie_id").
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from app.data.imports.errors import InvalidImport
from app.data.imports.reading import Table

IMDB = "imdb"
LETTERBOXD = "letterboxd"
LETTERBOXD_WATCHED = "letterboxd-watched"
MOVIELENS = "movielens"
PLAIN = "plain"
FORMATS = (IMDB, LETTERBOXD, LETTERBOXD_WATCHED, MOVIELENS, PLAIN)
"""Every format's name, as an import's answer gives it."""
FORMAT_LABELS = {
    IMDB: "IMDb",
    LETTERBOXD: "Letterboxd",
    LETTERBOXD_WATCHED: "Letterboxd (watched films, without ratings)",
    MOVIELENS: "MovieLens",
    PLAIN: "a movieId,rating file",
}
"""Each format as a page names it."""

KNOWN_HEADERS = (
    'IMDb\'s ratings export ("Const", "Your Rating", ...), Letterboxd\'s ratings.csv or '
    'watched.csv ("Date", "Name", "Year", "Letterboxd URI", "Rating"), MovieLens\' ratings '
    '("userId", "movieId", "rating", ...) or a plain "movieId,rating"'
)
MAX_TITLE = 300
"""Longest title kept from a row (the longest in MovieLens is under 200 characters): matching
and the answer never work on more of a cell than this."""
_SEPARATOR_NAMES = {",": "a comma", ";": "a semicolon", "\t": "a tab"}
_IMDB_ID = re.compile(r"tt0*([0-9]{1,10})", re.ASCII)
_WHOLE = re.compile(r"[0-9]{1,12}", re.ASCII)
_YEAR = re.compile(r"[0-9]{4}", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,6}(?:[.,][0-9]{0,6})?|[.,][0-9]{1,6})", re.ASCII)


@dataclass(frozen=True)
class ImportRow:
    """One film of a file as read: how it is named and the rating given (None: no rating)."""

    row: int
    rating: float | None
    movie_id: int | None = None
    imdb_id: int | None = None
    title: str | None = None
    year: int | None = None


@dataclass(frozen=True)
class ParsedImport:
    """A file read: its format (one of FORMATS) and its rows in file order."""

    format: str
    rows: tuple[ImportRow, ...]


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "", name).casefold()


# For the column names the formats ask for, a few constants: a file's own header names are
# not cached (one may be a megabyte long).
_known_key = functools.lru_cache(maxsize=64)(_key)


class _Columns:
    """Where each named column is, and reading one row's cells by name."""

    def __init__(self, header: tuple[str, ...]) -> None:
        self.header = header
        self.index: dict[str, int] = {}
        for position, name in enumerate(header):
            self.index.setdefault(_key(name), position)

    def has(self, *names: str) -> bool:
        return all(_known_key(name) in self.index for name in names)

    def name(self, key: str) -> str:
        return self.header[self.index[_known_key(key)]]

    def cell(self, cells: tuple[str, ...], key: str) -> str:
        position = self.index.get(_known_key(key))
        if position is None or position >= len(cells):
            return ""
        return cells[position].strip()


def parse(table: Table) -> ParsedImport:
    """The rows of `table` in the format its header names; InvalidImport if none or bad."""
    columns = _Columns(table.header)
    found = _recognise(columns)
    if found is None:
        shown = ", ".join(f'"{name[:40]}"' for name in table.header[:6])
        raise InvalidImport(
            f"The header ({shown}) is not one this page knows. It reads {KNOWN_HEADERS}.",
            row=1,
        )
    name, read_row = found
    if not table.rows:
        raise InvalidImport("The file has a header but no rows of ratings.", row=1)
    if name == MOVIELENS:
        _single_user(table, columns)
    for cells, line in zip(table.rows, table.lines, strict=True):
        if any(cell.strip() for cell in cells[len(table.header) :]):
            raise InvalidImport(
                f"{len(cells)} values where the header names {len(table.header)}: a value "
                f"holding {_SEPARATOR_NAMES[table.separator]} must be in double quotes.",
                row=line,
            )
    rows = tuple(
        read_row(_Cells(columns, cells, line, table.separator))
        for cells, line in zip(table.rows, table.lines, strict=True)
    )
    return ParsedImport(name, rows)


@dataclass(frozen=True)
class _Cells:
    """One row and what reading it needs: the columns, its line and the file's separator."""

    columns: _Columns
    cells: tuple[str, ...]
    row: int
    separator: str

    def text(self, key: str) -> str:
        return self.columns.cell(self.cells, key)

    def fail(self, key: str, message: str) -> InvalidImport:
        return InvalidImport(message, row=self.row, column=self.columns.name(key))

    def number(self, key: str) -> float | None:
        """A number, None when empty; a decimal comma is read where commas do not separate."""
        text = self.text(key)
        if not text:
            return None
        if not _NUMBER.fullmatch(text) or ("," in text and self.separator == ","):
            raise self.fail(key, f"{_shown(text)} is not a number.")
        return float(text.replace(",", "."))

    def half_stars(self, key: str, lowest: float, highest: float, scale: float) -> float | None:
        """A rating on a scale from `lowest` to `highest` in steps of `scale` stars' halves."""
        value = self.number(key)
        if value is None:
            return None
        steps = value * scale
        if not lowest <= value <= highest or not math.isclose(steps * 2, round(steps * 2)):
            step = "whole numbers" if scale == 0.5 else "steps of 0.5"
            raise self.fail(
                key,
                f"{_shown(self.text(key))} is not a rating from {lowest:g} to {highest:g} "
                f"in {step}.",
            )
        return round(steps * 2) / 2

    def whole(self, key: str, what: str) -> int | None:
        text = self.text(key)
        if not text:
            return None
        if not _WHOLE.fullmatch(text):
            raise self.fail(key, f"{_shown(text)} is not {what}.")
        return int(text)

    def title(self, key: str) -> str | None:
        """A title, None when empty, cut to MAX_TITLE characters."""
        return self.text(key)[:MAX_TITLE] or None

    def year(self, key: str) -> int | None:
        text = self.text(key)
        if not text:
            return None
        match = _YEAR.match(text)  # IMDb's and others' dates start with the year too
        if not match:
            raise self.fail(key, f"{_shown(text)} is not a year.")
        return int(match[0])


def _shown(text: str) -> str:
    """A cell as a message quotes it: short, so that an error shows no more of the file."""
    return repr(text if len(text) <= 20 else text[:20] + "…")


def _imdb(cells: _Cells) -> ImportRow:
    const = cells.text("Const")
    match = _IMDB_ID.fullmatch(const)
    if not match:
        raise cells.fail("Const", f"{_shown(const)} is not an IMDb title id such as tt0133093.")
    return ImportRow(
        row=cells.row,
        rating=cells.half_stars("Your Rating", 1, 10, 0.5),
        imdb_id=int(match[1]),
        title=cells.title("Title"),
        year=cells.year("Year") if cells.columns.has("Year") else None,
    )


def _letterboxd(cells: _Cells) -> ImportRow:
    rated = cells.columns.has("Rating")
    return ImportRow(
        row=cells.row,
        rating=cells.half_stars("Rating", 0.5, 5, 1) if rated else None,
        title=cells.title("Name"),
        year=cells.year("Year"),
    )


def _movielens(cells: _Cells) -> ImportRow:
    id_column = "movieId" if cells.columns.has("movieId") else "movie_id"
    has_imdb = cells.columns.has("imdb_id")
    return ImportRow(
        row=cells.row,
        rating=cells.half_stars("rating", 0.5, 5, 1),
        movie_id=cells.whole(id_column, "a MovieLens movie id"),
        imdb_id=cells.whole("imdb_id", "an IMDb id") if has_imdb else None,
        title=cells.title("title"),
    )


def _recognise(columns: _Columns) -> tuple[str, Callable[[_Cells], ImportRow]] | None:
    if columns.has("Const", "Your Rating"):
        return IMDB, _imdb
    if columns.has("Name", "Year", "Rating"):
        return LETTERBOXD, _letterboxd
    if columns.has("Name", "Year", "Letterboxd URI"):
        return LETTERBOXD_WATCHED, _letterboxd
    movie_id = columns.has("movieId") or columns.has("movie_id")
    if movie_id and columns.has("rating"):
        ours = columns.has("userId") or columns.has("imdb_id")
        return (MOVIELENS if ours else PLAIN), _movielens
    return None


def _single_user(table: Table, columns: _Columns) -> None:
    """Refuse a MovieLens file that holds the ratings of more than one user."""
    if not columns.has("userId"):
        return
    first = None
    for cells, line in zip(table.rows, table.lines, strict=True):
        user = columns.cell(cells, "userId")
        if first is None:
            first = user
        elif user != first:
            raise InvalidImport(
                f"This file holds the ratings of more than one user ({_shown(first)} and "
                f"{_shown(user)}); import one person's ratings at a time.",
                row=line,
                column=columns.name("userId"),
            )
