"""A recommended film's row, the parts that depend on the film alone, rendered once and kept.

Title, year, genres, links, average rating and count are the same whoever asks, so the
results list renders them once per film (templates/partials/_film.html's macros) and then
only fills in the order, the scores and the reasons per request: escaping and formatting
those parts was most of the list's rendering time.

Kept under everything they are made from, not under the film's id: a new snapshot that
changes a film's average or title makes a new entry by itself, and no row of an older
snapshot can be served for a newer one, even while a request made before the swap renders.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import jinja2

from app.engine import MovieResult

FILM_TEMPLATE = "partials/_film.html"
MAX_FILMS = 10_000
"""Rows kept, at about 1 KB each: every film of ml-latest-small, the most recommended of
larger sets. Past it the kept rows are dropped all at once (after a new snapshot, most
belong to the old one) and made again as they are asked for."""


class FilmParts(NamedTuple):
    """The rendered parts of one film's row: its heading block, its average, its table cell.

    Each is the Markup (a str marked safe) its macro returns, so the list does not escape it.
    """

    main: str
    average: str
    title_cell: str


FilmKey = tuple[int, str, int | None, tuple[str, ...], str | None, str | None, float | None, int]


class FilmRows:
    """Renders a film's parts on first use and keeps them; called from templates."""

    def __init__(self, environment: jinja2.Environment, max_films: int = MAX_FILMS) -> None:
        self._environment = environment
        self._max_films = max_films
        self._kept: dict[FilmKey, FilmParts] = {}
        self._lock = threading.Lock()

    def __call__(self, movie: MovieResult) -> FilmParts:
        """The parts of `movie`'s row, rendered now if not yet kept."""
        key = (
            movie.movie_id,
            movie.title,
            movie.year,
            movie.genres,
            movie.imdb_url,
            movie.tmdb_url,
            movie.avg_rating,
            movie.ratings_count,
        )
        found = self._kept.get(key)
        if found is not None:
            return found
        macros = self._environment.get_template(FILM_TEMPLATE).module
        made = FilmParts(*(getattr(macros, part)(movie) for part in FilmParts._fields))
        # Two threads may render the same film at once; either result is the same.
        with self._lock:
            if len(self._kept) >= self._max_films:
                self._kept.clear()
            self._kept[key] = made
        return made

    def rows(self, movies: Sequence[MovieResult]) -> list[tuple[MovieResult, FilmParts]]:
        """Each film with its parts, for a template's loop: one lookup per film per list."""
        return [(movie, self(movie)) for movie in movies]

    def __len__(self) -> int:
        return len(self._kept)
