"""What a recommendation request gets back, assembled from a ranking: films, scores, reasons."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from app.data.catalogue import Catalogue, Movie
from app.recommender import (
    Algorithm,
    Neighbour,
    Profile,
    Ranking,
    RatingMatrix,
    Reason,
    neighbours_rated,
)

REASONS_PER_FILM = 3


@dataclass(frozen=True)
class Because:
    """One reason a film is recommended, with the names a person reads.

    `user`: similar user `id` rated the film `rating`, at `similarity` to the person.
    `movie`: the person rated film `id` (`title`) `rating`, and it is `similarity`-related
    to the recommended film. `popular`: `similarity` is the share of users who rated the
    film and `rating` its mean.
    """

    kind: Literal["user", "movie", "popular"]
    id: int
    title: str | None
    similarity: float
    rating: float


@dataclass(frozen=True)
class MovieResult:
    """One recommended movie with what the page and the API show about it.

    `neighbours_rated` counts the similar users who rated it (user-based algorithms only);
    `imdb_url` and `tmdb_url` link its pages when the release has links.csv.
    """

    movie_id: int
    title: str
    year: int | None
    genres: tuple[str, ...]
    score: float
    neighbours_rated: int | None
    avg_rating: float | None
    ratings_count: int
    reasons: tuple[Because, ...]
    imdb_url: str | None = None
    tmdb_url: str | None = None


@dataclass(frozen=True)
class Recommendations:
    """The answer to one request: the algorithm used, the films, and the neighbours if any.

    `method` says in a sentence how the films were scored and `reason_measure` what the
    figure in a film-based reason is (both from the algorithm). `note` says why the
    algorithm differs from the one asked for (for example while the default is still being
    prepared).
    """

    user_id: int | None
    n: int
    k: int
    algorithm: str
    label: str
    method: str
    reason_measure: str
    movies: tuple[MovieResult, ...]
    neighbours: tuple[Neighbour, ...]
    note: str = ""


def assemble(
    matrix: RatingMatrix,
    catalogue: Catalogue,
    algorithm: Algorithm,
    profile: Profile,
    ranking: Ranking,
    *,
    user_id: int | None,
    n: int,
    k: int,
    note: str = "",
) -> Recommendations:
    """Join a ranking with titles, averages, counts and the algorithm's explanations."""
    reasons = algorithm.explain(profile, ranking, limit=REASONS_PER_FILM)
    # Only user-based rankings have neighbours to count.
    rated_by = neighbours_rated(matrix, ranking) if len(ranking.neighbours) else None
    # Python values for the whole list at once, and the films shown or named in a reason
    # found in one search: a NumPy scalar read or a search per film cost more.
    columns = ranking.items
    movie_ids = matrix.item_ids[columns].tolist()
    named = [r.id for film in reasons for r in film if r.kind == "movie"]
    films = catalogue.get_many(movie_ids + named)
    movies = tuple(
        _movie_result(
            movie_id,
            films.get(movie_id),
            score,
            None if rated_by is None else int(rated_by[position]),
            mean,
            count,
            [_because(films, reason) for reason in reasons[position]]
            if position < len(reasons)
            else [],
        )
        for position, (movie_id, score, mean, count) in enumerate(
            zip(
                movie_ids,
                ranking.scores.tolist(),
                matrix.item_mean[columns].tolist(),
                matrix.item_count[columns].tolist(),
                strict=True,
            )
        )
    )
    neighbours = tuple(
        Neighbour(int(matrix.user_ids[row]), float(similarity))
        for row, similarity in zip(ranking.neighbours, ranking.similarities, strict=True)
    )
    someone = user_id is not None
    method = algorithm.method.format(
        neighbours=len(neighbours),
        subject="this user" if someone else "you",
        subject_has="this user has" if someone else "you have",
    )
    return Recommendations(
        user_id=user_id,
        n=n,
        k=k,
        algorithm=algorithm.name,
        label=algorithm.label,
        method=method,
        reason_measure=algorithm.reason_measure,
        movies=movies,
        neighbours=neighbours,
        note=note,
    )


def _movie_result(
    movie_id: int,
    movie: Movie | None,
    score: float,
    rated_by: int | None,
    mean: float,
    count: int,
    reasons: list[Because],
) -> MovieResult:
    # A rated movie missing from the movies file still gets a row, under its id.
    movie = movie or Movie(movie_id, f"Movie {movie_id}", None, ())
    return MovieResult(
        movie_id=movie_id,
        title=movie.title,
        year=movie.year,
        genres=movie.genres,
        score=score,
        neighbours_rated=rated_by,
        avg_rating=None if math.isnan(mean) else mean,
        ratings_count=int(count),
        reasons=tuple(reasons),
        imdb_url=movie.imdb_url,
        tmdb_url=movie.tmdb_url,
    )


def _because(films: dict[int, Movie], reason: Reason) -> Because:
    title = None
    if reason.kind == "movie":
        movie = films.get(reason.id)
        title = movie.title if movie else f"Movie {reason.id}"
    return Because(reason.kind, reason.id, title, reason.similarity, reason.rating)
