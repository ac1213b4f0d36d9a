"""The movie catalogue: title, year and genres by movie id, in flat arrays a snapshot can hold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NO_YEAR = -1


@dataclass(frozen=True)
class Movie:
    """What the page and the API show about a film."""

    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]


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
        position = int(np.searchsorted(self.movie_ids, movie_id))
        if position >= len(self.movie_ids) or self.movie_ids[position] != movie_id:
            return None
        return self.at(position)

    def at(self, position: int) -> Movie:
        """The film at a position in id order."""
        year = int(self.years[position])
        genres = _unpack(self.genre_bytes, self.genre_offsets, position)
        return Movie(
            movie_id=int(self.movie_ids[position]),
            title=_unpack(self.title_bytes, self.title_offsets, position),
            year=None if year == NO_YEAR else year,
            genres=tuple(g for g in genres.split("|") if g),
        )


def _pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [text.encode("utf-8") for text in texts]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8).copy(), offsets


def _unpack(data: np.ndarray, offsets: np.ndarray, position: int) -> str:
    return bytes(data[offsets[position] : offsets[position + 1]]).decode("utf-8")
