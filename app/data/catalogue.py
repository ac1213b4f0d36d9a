"""The movie catalogue: title, year and genres by movie id, in flat arrays a snapshot can hold."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is loaded only where CSV files are read
    import pandas as pd

NO_YEAR = -1
NO_LINK = -1
DECODED_MOVIES = 8192
# MovieLens files titles under their noun: "Matrix, The", "Cité des enfants perdus, La".
_TRAILING_ARTICLE = re.compile(
    r"^(?P<title>.+), (?P<article>the|a|an|les|la|le|l'|il|el|los|las|das|der|die|den|det|i)"
    r"(?P<rest>\s*\(.*\))?$",
    re.IGNORECASE,
)
_NOT_WORD = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class Movie:
    """What the page and the API show about a film; its IMDb and TMDB ids when the release
    has links.csv."""

    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    imdb_id: int | None = None
    tmdb_id: int | None = None

    @property
    def imdb_url(self) -> str | None:
        """The film's page on IMDb."""
        return None if self.imdb_id is None else f"https://www.imdb.com/title/tt{self.imdb_id:07d}/"

    @property
    def tmdb_url(self) -> str | None:
        """The film's page on The Movie Database."""
        return None if self.tmdb_id is None else f"https://www.themoviedb.org/movie/{self.tmdb_id}"


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Movies in ascending id order; titles and genres as UTF-8 bytes with offsets.

    Flat arrays rather than Python objects: 60,000 films cost a few megabytes, map from a
    snapshot without parsing, and are decoded only for the films a request shows.
    """

    movie_ids: np.ndarray
    years: np.ndarray
    title_bytes: np.ndarray
    title_offsets: np.ndarray
    genre_bytes: np.ndarray
    genre_offsets: np.ndarray
    imdb_ids: np.ndarray
    tmdb_ids: np.ndarray

    @classmethod
    def from_frame(cls, movies: pd.DataFrame) -> Catalogue:
        """Build from the tidy movies frame (indexed by movie_id; title, year, genres)."""
        movies = movies.sort_index()
        titles, title_offsets = _pack(movies["title"].astype(str).tolist())
        genres, genre_offsets = _pack(movies["genres"].astype(str).tolist())
        return cls(
            movie_ids=movies.index.to_numpy(dtype=np.int64),
            years=movies["year"].fillna(NO_YEAR).to_numpy(dtype=np.int32),
            title_bytes=titles,
            title_offsets=title_offsets,
            genre_bytes=genres,
            genre_offsets=genre_offsets,
            imdb_ids=_ids(movies, "imdb_id"),
            tmdb_ids=_ids(movies, "tmdb_id"),
        )

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Catalogue:
        """Rebuild from `to_arrays()` output (for example a memory-mapped snapshot)."""
        return cls(**{name: arrays[f"catalogue.{name}"] for name in cls.__dataclass_fields__})

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store, under names prefixed with "catalogue."."""
        return {f"catalogue.{name}": getattr(self, name) for name in self.__dataclass_fields__}

    def __len__(self) -> int:
        return len(self.movie_ids)

    def get(self, movie_id: int) -> Movie | None:
        """The film with this id, or None if the catalogue does not list it."""
        position = self.position(movie_id)
        return None if position is None else self.at(position)

    def get_many(self, movie_ids: Sequence[int]) -> dict[int, Movie]:
        """The films with these ids that the catalogue lists, by id (one search for all)."""
        wanted = np.unique(np.asarray(movie_ids, dtype=np.int64))
        positions = self.movie_ids.searchsorted(wanted)
        inside = positions < len(self.movie_ids)
        found = np.zeros(len(wanted), dtype=bool)
        found[inside] = self.movie_ids[positions[inside]] == wanted[inside]
        return {
            movie_id: self.at(position)
            for movie_id, position in zip(
                wanted[found].tolist(), positions[found].tolist(), strict=True
            )
        }

    def position(self, movie_id: int) -> int | None:
        """Where the film is in id order, or None."""
        position = int(self.movie_ids.searchsorted(movie_id))
        if position < len(self.movie_ids) and self.movie_ids[position] == movie_id:
            return position
        return None

    def search(self, query: str, popularity: np.ndarray, limit: int = 20) -> list[Movie]:
        """Films whose title (either word order) and year contain every word of `query`.

        Case, accents and punctuation are ignored, so "matrix", "The Matrix 1999" and
        "Matrix, The" all find "Matrix, The (1999)". Titles that start with the query
        come first, then the more rated (`popularity`, by catalogue position).
        """
        words = _fold(query).split()
        if not words:
            return []
        phrase = " ".join(words)
        hits = [
            i for i, (text, _) in enumerate(self._search_index) if all(w in text for w in words)
        ]
        hits.sort(
            key=lambda i: (
                not any(name.startswith(phrase) for name in self._search_index[i][1]),
                -int(popularity[i]),
                i,
            )
        )
        return [self.at(i) for i in hits[:limit]]

    @cached_property
    def _search_index(self) -> list[tuple[str, tuple[str, ...]]]:
        """Per film: its searchable text (title both ways, year) and the title's two orders."""
        index = []
        for position in range(len(self)):
            title = _unpack(self.title_bytes, self.title_offsets, position)
            moved = _TRAILING_ARTICLE.match(title)
            names = (_fold(title),) + (
                (_fold(f"{moved['article']} {moved['title']}"),) if moved else ()
            )
            year = int(self.years[position])
            index.append((" ".join((*names, str(year) if year > 0 else "")), names))
        return index

    @cached_property
    def genres(self) -> tuple[str, ...]:
        """Every genre used, alphabetically (worked out once)."""
        return tuple(
            sorted(
                {
                    genre
                    for position in range(len(self))
                    for genre in _unpack(self.genre_bytes, self.genre_offsets, position).split("|")
                    if genre
                }
            )
        )

    def at(self, position: int) -> Movie:
        """The film at a position in id order."""
        return self._decoded(position)

    @cached_property
    def _decoded(self) -> Callable[[int], Movie]:
        # Lists show the same few thousand films again and again: decode each once. The
        # cache holds a copy of the catalogue, not `self`: a cycle through `self` would
        # leave the catalogue, and the snapshot it maps, to the cyclic collector, or keep
        # them for good once gc.freeze() has frozen them (issue 24, item 3).
        return functools.lru_cache(maxsize=DECODED_MOVIES)(replace(self)._decode)

    def _decode(self, position: int) -> Movie:
        year = int(self.years[position])
        genres = _unpack(self.genre_bytes, self.genre_offsets, position)
        imdb, tmdb = int(self.imdb_ids[position]), int(self.tmdb_ids[position])
        return Movie(
            movie_id=int(self.movie_ids[position]),
            title=display_title(_unpack(self.title_bytes, self.title_offsets, position)),
            year=None if year == NO_YEAR else year,
            genres=tuple(g for g in genres.split("|") if g),
            imdb_id=None if imdb == NO_LINK else imdb,
            tmdb_id=None if tmdb == NO_LINK else tmdb,
        )


def _ids(movies: pd.DataFrame, column: str) -> np.ndarray:
    """An optional id column as int64, NO_LINK where there is none."""
    if column not in movies:
        return np.full(len(movies), NO_LINK, dtype=np.int64)
    return movies[column].astype("Int64").fillna(NO_LINK).to_numpy(dtype=np.int64)


def display_title(title: str) -> str:
    """The title as people write it: "Matrix, The" reads "The Matrix" (search knows both)."""
    moved = _TRAILING_ARTICLE.match(title)
    if not moved:
        return title
    article, rest = moved["article"], moved["rest"] or ""
    space = "" if article.endswith("'") else " "
    return f"{article}{space}{moved['title']}{rest}"


def _pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def _unpack(data: np.ndarray, offsets: np.ndarray, position: int) -> str:
    return bytes(data[offsets[position] : offsets[position + 1]]).decode("utf-8")


def _fold(text: str) -> str:
    """Lower case without accents or punctuation: what search compares."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _NOT_WORD.sub(" ", plain).strip()
