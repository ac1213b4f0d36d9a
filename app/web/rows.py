"""A results list's rows: each film's own parts rendered once and kept, the rest per request.

Title, year, genres, links, average rating and count are the same whoever asks, so the
results list renders them once per film (templates/partials/_film.html's macros) and keeps
them. What differs per request (the rank, the match, the similar users who rated it, the
reasons and the raw figures) is written here, in Python, around those kept parts: in Jinja
each of its twenty-odd expressions per row was an escape and an attribute lookup, and they
were most of a list's rendering time (0.27 ms of a ten-film list's 0.9 ms answer).
templates/partials/_recommendations.html places what this gives; tests/test_rows_once.py
holds it to the list as the template rendered it whole, row by row.

Kept under everything they are made from, not under the film's id: a new snapshot that
changes a film's average or title makes a new entry by itself, and no row of an older
snapshot can be served for a newer one, even while a request made before the swap renders.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jinja2
from markupsafe import Markup, escape

from app.engine import Because, MovieResult, Recommendations

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


class ListedRows(NamedTuple):
    """A list's rows as the template places them: the list items and the raw-figures rows."""

    items: Markup
    figures: Markup


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

    def listed(
        self,
        results: Recommendations,
        rate_this: Callable[[MovieResult], str] | None = None,
    ) -> ListedRows:
        """Every row of `results`, its kept parts with what this request adds.

        `rate_this(movie)` is the stars control a visitor's list shows in each row (a macro of
        the template, which knows the rating page's address).
        """
        first = results.movies[0] if results.movies else None
        # Each algorithm scores on its own scale (a predicted rating, a weight...): what a
        # person reads is the match, the score as a share of the top film's.
        scale = 100 / first.score if first is not None and first.score > 0 else None
        rater = "You" if results.user_id is None else f"User {results.user_id}"
        similar = len(results.neighbours)
        items: list[str] = []
        figures: list[str] = []
        for rank, movie in enumerate(results.movies, 1):
            film = self(movie)
            if scale is None:
                match = "—"
            else:
                match = f"{min(max(int((movie.score * scale + 0.5) // 1), 0), 100)}%"
            items.append(
                f"""
    <li class="movie">
      <span class="rank" aria-hidden="true">{rank}</span>
      {film.main}
      <dl class="movie-stats">
        <div><dt>Match</dt><dd class="score">{match}</dd></div>"""
            )
            if movie.neighbours_rated is not None:
                items.append(
                    "\n        <div><dt>Rated by</dt>"
                    f"<dd>{movie.neighbours_rated} of {similar} similar</dd></div>"
                )
            items.append(f"\n        {film.average}\n      </dl>")
            if rate_this is not None:
                items.append(f"\n      {rate_this(movie)}")
            why, raw = _reasons(movie.reasons, rater)
            items.append(f"{why}\n    </li>")
            figures.append(
                f'\n        <tr>{film.title_cell}<td class="raw-score">{movie.score:.2f}</td>'
                f"<td>{raw}</td></tr>"
            )
        # Everything above is a kept (escaped) part, a number, or escaped where it is written.
        return ListedRows(Markup("".join(items)), Markup("".join(figures)))

    def __len__(self) -> int:
        return len(self._kept)


def _reasons(reasons: Sequence[Because], rater: str) -> tuple[str, str]:
    """A film's reasons as its row says them (none: nothing) and as its raw figures do."""
    if not reasons:
        return "", ""
    said: list[str] = []
    figures: list[str] = []
    for reason in reasons:
        if reason.kind == "user":
            said.append(
                f"User {reason.id} rated it <strong>★ {reason.rating:.1f}</strong>"
                ' <span class="muted">(one of the most similar users)</span>'
            )
            figures.append(f"user {reason.id} {reason.similarity:.2f}")
        elif reason.kind == "movie":
            title = _escaped(reason.title or "")
            said.append(f"{rater} rated <strong>{title}</strong> ★ {reason.rating:.1f}")
            figures.append(f"{title} {reason.similarity:.2f}")
        else:
            said.append(
                f"Rated by {reason.similarity * 100:.0f}% of users, average ★ {reason.rating:.1f}"
            )
            figures.append(f"share of users {reason.similarity:.2f}")
    items = "".join(f"\n          <li>{line}</li>" for line in said)
    why = (
        '\n      <div class="why">\n        <span class="why-label">Why</span>'
        f'\n        <ul class="reasons">{items}\n        </ul>\n      </div>'
    )
    return why, "; ".join(figures)


@functools.lru_cache(maxsize=MAX_FILMS)
def _escaped(title: str) -> str:
    """A film's title made safe to write into HTML (the same titles come back in many lists)."""
    return str(escape(title))
