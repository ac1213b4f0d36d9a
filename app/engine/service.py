"""The Service: the async API the web layer uses, one call per question.

Each call looks in the answer cache on the event loop and otherwise moves off it once: the
computation and, when the caller passes a `render` function, the HTML made from its result
run together in one worker thread. At most COMPUTE_THREADS such hops run at a time; the
rest wait here without a thread (NumPy and SciPy hold the GIL between array operations, so
more threads than cores only take turns and starve the event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from app import metrics
from app.config import Settings
from app.data.catalogue import Movie
from app.engine.answers import Recommendations
from app.engine.cache import LRUCache
from app.engine.engine import Choice, Engine
from app.engine.queries import DEFAULT_K, DEFAULT_N, NO_FILTERS, Filters, InvalidRatings, Ratings
from app.engine.status import (
    AlgorithmStatus,
    AlgorithmUnavailable,
    Status,
    UnknownAlgorithm,
)
from app.recommender import Neighbour, UnknownUser

T = TypeVar("T")
R = TypeVar("R")

EVALUATION_DIR = "evaluation"
STARTERS = 24
"""Well-known films the rating page offers before anything is searched."""
FROM_USER_LIMIT = 100
"""Most of a MovieLens user's ratings a visitor starts from (their highest)."""


@dataclass(frozen=True)
class Reply(Generic[T]):
    """What a call answered, and the HTML rendered from it when a `render` was given."""

    value: T
    html: str | None = None


@dataclass(frozen=True)
class _Kept(Generic[T]):
    """An answer in the cache, with the HTML `render` made from it, if any."""

    value: T
    render: Callable[[T], str] | None = None
    html: str | None = None


# What one cache entry takes, measured with a recursive sys.getsizeof over the objects
# (tests/test_service.py checks the estimate against it): a fixed part, each film of the
# answer, each reason, each rating in a visitor's key, and the HTML's characters.
ENTRY_BYTES = 2_000
FILM_BYTES = 700
REASON_BYTES = 400
RATING_BYTES = 80


def entry_bytes(answer: Recommendations, html: str | None, ratings: int = 0) -> int:
    """About how many bytes a cached answer takes with its key."""
    reasons = sum(len(movie.reasons) for movie in answer.movies)
    return (
        ENTRY_BYTES
        + FILM_BYTES * len(answer.movies)
        + REASON_BYTES * reasons
        + RATING_BYTES * ratings
        + len(html or "")
    )


@dataclass(frozen=True)
class VisitRequest:
    """What the rating page asks: the ratings kept so far and one change to them.

    `from_user` replaces the ratings with a MovieLens user's; `set` rates a film (or changes
    its rating); `remove` drops one. They apply in that order.
    """

    ratings: Sequence[tuple[int, float]] = ()
    from_user: int | None = None
    set: tuple[int, float] | None = None
    remove: int | None = None
    n: int = DEFAULT_N
    k: int = DEFAULT_K
    algorithm: str | None = None
    filters: Filters = NO_FILTERS


@dataclass(frozen=True)
class Visit:
    """Everything the rating page shows; `error` is what stopped it going further, if anything."""

    ratings: Ratings = field(default_factory=lambda: Ratings((), ()))
    rated: list[tuple[Movie, float]] = field(default_factory=list)
    starters: list[Movie] = field(default_factory=list)
    results: Recommendations | None = None
    error: Exception | None = None


VISIT_ERRORS = (InvalidRatings, UnknownUser, UnknownAlgorithm, AlgorithmUnavailable)
"""What a visit shows beside its ratings rather than failing."""


@dataclass(frozen=True)
class CacheInfo:
    """How the answer cache is doing: entries and bytes held (and allowed), hits and misses."""

    entries: int
    capacity: int
    bytes: int
    max_bytes: int
    hits: int
    misses: int


class Service:
    """The web layer's one way in: status, algorithms, recommendations, the catalogue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(settings)
        # Answers (and HTML rendered from them) change only when the model does.
        self._answers: LRUCache[_Kept[Recommendations]] = LRUCache(
            settings.result_cache, settings.result_cache_bytes
        )
        self._slots = asyncio.Semaphore(settings.compute_threads)

    @property
    def status(self) -> Status:
        """Where the engine is."""
        return self.engine.status

    @property
    def ready(self) -> bool:
        """True once a model is being served."""
        return self.engine.ready

    def start(self) -> None:
        """Start building in the background (at start-up)."""
        self.engine.start()

    def retry(self) -> None:
        """Build again now after a failure, in every worker sharing DATA_DIR."""
        self.engine.retry()

    async def stop(self) -> None:
        """Cancel background work (on shutdown)."""
        await self.engine.stop()

    async def fits_done(self) -> None:
        """Wait until every enabled algorithm is fitted or left out."""
        await self.engine.fits_done()

    def algorithms(self) -> list[AlgorithmStatus]:
        """Every algorithm, described, and whether it serves."""
        return self.engine.algorithms()

    def default_algorithm(self) -> str:
        """The algorithm a request without a choice gets now."""
        return self.engine.default_algorithm()

    def genres(self) -> tuple[str, ...]:
        """Every genre in the catalogue (NotReady before the model)."""
        return self.engine.model.genres

    def cache_info(self) -> CacheInfo:
        """The answer cache's size and hit counts."""
        answers = self._answers
        return CacheInfo(
            len(answers),
            answers.size,
            answers.bytes,
            answers.max_bytes,
            answers.hits,
            answers.misses,
        )

    async def recommend(
        self,
        user_id: int,
        n: int = DEFAULT_N,
        k: int = DEFAULT_K,
        algorithm: str | None = None,
        filters: Filters = NO_FILTERS,
        render: Callable[[Recommendations], str] | None = None,
    ) -> Reply[Recommendations]:
        """Recommendations for a known user, and `render(answer)` if given.

        Without `algorithm`, the default one if it is ready, else the best that is. The
        HTML is cached with the answer, keyed by `render`: pass a module-level function.
        UnknownUser, UnknownAlgorithm, AlgorithmUnavailable or NotReady otherwise.
        """
        choice = self.engine.choose(algorithm)
        key = self._key(choice, user_id, n, k, filters)

        def answer() -> Recommendations:
            with metrics.RECOMMEND_SECONDS.labels(choice.algorithm.name).time():
                profile = choice.model.profile_of(user_id)
                return choice.model.recommend(
                    choice.algorithm,
                    profile,
                    user_id=user_id,
                    n=n,
                    k=k,
                    filters=filters,
                    note=choice.note,
                )

        return await self._cached(key, answer, render)

    async def recommend_for_ratings(
        self,
        pairs: Sequence[tuple[int, float]],
        n: int = DEFAULT_N,
        k: int = DEFAULT_K,
        algorithm: str | None = None,
        filters: Filters = NO_FILTERS,
    ) -> tuple[Recommendations, Ratings]:
        """Recommendations for someone who is not in the data, from the ratings they give.

        The profile is compared with every user (none excluded) by the same code as a known
        user's, without a refit or a copy of the data. InvalidRatings (before any work) for
        an unknown film, a value off the half-star scale, a repeat or too many.
        """
        choice = self.engine.choose_for_visitor(algorithm, len(pairs))
        return await self._off_loop(self._for_ratings, choice, pairs, n, k, filters)

    async def visit(
        self, asked: VisitRequest, render: Callable[[Visit], str] | None = None
    ) -> Reply[Visit]:
        """Apply the rating page's change, recommend from the result, and render it if asked."""

        def work() -> Reply[Visit]:
            visit = self._visit(asked)
            return Reply(visit, render(visit) if render else None)

        return await self._off_loop(work)

    async def similar_users(self, user_id: int, k: int = DEFAULT_K) -> list[Neighbour]:
        """The k users most similar to a known user."""
        return await self._off_loop(self.engine.model.similar_users, user_id, k)

    async def search_movies(self, query: str, limit: int) -> list[Movie]:
        """Films whose title matches the words typed, best first; the starters if none."""
        model = self.engine.model
        if not query:
            return await self._off_loop(model.starter_movies, STARTERS)
        return await self._off_loop(model.search_movies, query, limit)

    async def check_ratings(self, pairs: Sequence[tuple[int, float]]) -> Ratings:
        """Validate ratings against the catalogue without recommending (InvalidRatings)."""
        return await self._off_loop(self.engine.model.check_ratings, pairs)

    async def evaluation(self) -> tuple[dict[str, Any], bool] | None:
        """The latest offline evaluation and whether it ran on this server's data."""
        # Imported here: the evaluation code loads pandas, which serving does not need.
        from app.evaluation.report import read_latest

        return await asyncio.to_thread(read_latest, self.settings.data_dir / EVALUATION_DIR)

    def _visit(self, asked: VisitRequest) -> Visit:
        model = self.engine.model
        starters = model.starter_movies(STARTERS)
        try:
            pairs = list(asked.ratings)
            if asked.from_user is not None:
                pairs = model.user_ratings(asked.from_user, FROM_USER_LIMIT)
            if asked.set is not None:
                movie_id = asked.set[0]
                pairs = [*(p for p in pairs if p[0] != movie_id), asked.set]
            if asked.remove is not None:
                pairs = [p for p in pairs if p[0] != asked.remove]
            ratings = model.check_ratings(pairs)
        except VISIT_ERRORS as exc:
            return Visit(starters=starters, error=exc)
        rated = list(zip(model.movies(ratings.movie_ids), ratings.values, strict=True))
        visit = Visit(ratings, rated, starters)
        if not len(ratings):
            return visit
        try:
            choice = self.engine.choose_for_visitor(asked.algorithm, len(ratings))
            results, _ = self._for_ratings(choice, ratings.pairs(), asked.n, asked.k, asked.filters)
        except VISIT_ERRORS as exc:
            return Visit(ratings, rated, starters, error=exc)
        return Visit(ratings, rated, starters, results)

    def _for_ratings(
        self,
        choice: Choice,
        pairs: Sequence[tuple[int, float]],
        n: int,
        k: int,
        filters: Filters,
    ) -> tuple[Recommendations, Ratings]:
        ratings = choice.model.check_ratings(pairs)
        # A visitor policy's pick comes with its own neighbourhood size.
        k = k if choice.k is None else choice.k
        key = ("ratings", self._key(choice, ratings, n, k, filters))
        kept = self._answers.get(key)
        metrics.answer_cache(kept is not None)
        if kept is None:
            with metrics.RECOMMEND_SECONDS.labels(choice.algorithm.name).time():
                answer = choice.model.recommend(
                    choice.algorithm,
                    choice.model.profile_for(ratings),
                    user_id=None,
                    n=n,
                    k=k,
                    filters=filters,
                    note=choice.note,
                )
            kept = _Kept(answer)
            self._answers.put(key, kept, entry_bytes(answer, None, len(ratings)))
        return kept.value, ratings

    def _key(self, choice: Choice, who: Hashable, n: int, k: int, filters: Filters) -> Hashable:
        # k changes nothing for algorithms without a neighbourhood: one entry for all k.
        k = k if choice.algorithm.uses_k else 0
        return (self.engine.generation, choice.algorithm.name, choice.note, who, n, k, filters)

    async def _cached(
        self,
        key: Hashable,
        compute: Callable[[], Recommendations],
        render: Callable[[Recommendations], str] | None,
    ) -> Reply[Recommendations]:
        """The answer (and its HTML) from the cache, else what is missing made in one hop."""
        kept = self._answers.get(key)
        metrics.answer_cache(kept is not None)
        if kept is not None and (render is None or kept.render is render):
            return Reply(kept.value, kept.html if render else None)

        def work() -> Reply[Recommendations]:
            value = kept.value if kept is not None else compute()
            return Reply(value, render(value) if render else None)

        reply = await self._off_loop(work)
        weight = (
            entry_bytes(reply.value, reply.html) if isinstance(reply.value, Recommendations) else 0
        )
        self._answers.put(key, _Kept(reply.value, render, reply.html), weight)
        return reply

    async def _off_loop(self, func: Callable[..., R], *args: Any) -> R:
        """`func(*args)` in a worker thread once a compute slot is free."""
        async with self._slots:
            return await asyncio.to_thread(func, *args)
