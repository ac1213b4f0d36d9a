"""The Service: the async API the web layer uses, one call per question.

Answers are cached and computed off the event loop by app/engine/answering.py; the database
behind movie nights and saved profiles is started and stopped here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Hashable, Sequence
from typing import Any

from app import metrics
from app.config import Settings
from app.data.catalogue import Movie
from app.engine.answering import Answering, Reply
from app.engine.answers import Recommendations
from app.engine.cache import CacheInfo, Encode, Present
from app.engine.choice import Choice
from app.engine.engine import Engine
from app.engine.group import (
    GroupRecommendations,
    GroupStrategyInfo,
    group_strategies,
    group_strategy,
    recommend_group,
)
from app.engine.imports import ImportResult, import_ratings
from app.engine.nights import Nights
from app.engine.profiles import Profiles
from app.engine.queries import DEFAULT_K, DEFAULT_N, NO_FILTERS, Filters, Ratings
from app.engine.status import AlgorithmStatus, Status
from app.engine.visits import STARTERS, Visit, VisitRequest, make_visit
from app.recommender import Neighbour, Profile
from app.store import Database

EVALUATION_DIR = "evaluation"
SETTLE_SECONDS = 300.0
CHEAP_N = 20
CHEAP_REASONS = 20_000
"""A known user's list the build ranked is made on the event loop (app/engine/answering.py)
when it is this short and its reasons weigh at most this many (rated film, film shown)
pairs: about 0.2 ms of NumPy for the reasons and 1 ms in all with the HTML. Longer lists and
heavier raters (a 22,000-rating user's 50 reasons take 7 ms) go to a thread as ever."""


class Service:
    """The web layer's one way in: status, algorithms, recommendations, the catalogue."""

    def __init__(
        self, settings: Settings, present: Present | None = None, encode: Encode | None = None
    ) -> None:
        self.settings = settings
        self._engine = Engine(settings)
        # Answers (and HTML presented from them) change only when the model does.
        self._answering = Answering(settings, present, encode)
        self._nights = Nights(settings, Database.from_settings(settings), self)
        # Profiles share the nights' database, which the nights start and stop.
        self._profiles = Profiles(settings, self._nights.database, self)

    @property
    def nights(self) -> Nights:
        """Movie nights: start, join, rate, decide (kept in the database)."""
        return self._nights

    @property
    def profiles(self) -> Profiles:
        """Saved profiles behind private links (kept in the database)."""
        return self._profiles

    @property
    def status(self) -> Status:
        """Where the engine is."""
        return self._engine.status

    @property
    def ready(self) -> bool:
        """True once a model is being served."""
        return self._engine.ready

    def start(self) -> None:
        """Load the model in the background (at start-up) and watch for newer snapshots;
        start the nights' database in the background too."""
        self._engine.start()
        self._nights.start()
        self._profiles.start()

    def retry(self) -> None:
        """Try failed builds again now, in every worker sharing DATA_DIR."""
        self._engine.retry()

    async def stop(self) -> None:
        """Cancel background work (on shutdown) and close the database."""
        await self._engine.stop()
        await self._profiles.stop()
        await self._nights.stop()

    async def loaded(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until a model is served or its load failed (TimeoutError after `timeout`)."""
        await self._engine.loaded(timeout)

    async def settled(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until every enabled algorithm is ready or unavailable, or the load failed."""
        await self._engine.settled(timeout)

    def algorithms(self) -> list[AlgorithmStatus]:
        """Every algorithm, described, and whether it serves."""
        return self._engine.algorithms()

    def default_algorithm(self) -> str:
        """The algorithm a request without a choice gets now."""
        return self._engine.default_algorithm()

    def genres(self) -> tuple[str, ...]:
        """Every genre in the catalogue (NotReady before the model)."""
        return self._engine.model.genres

    def cache_info(self) -> CacheInfo:
        """The answer cache's size and hit counts."""
        return self._answering.info()

    async def recommend(
        self,
        user_id: int,
        n: int = DEFAULT_N,
        k: int = DEFAULT_K,
        algorithm: str | None = None,
        filters: Filters = NO_FILTERS,
        presented: bool = False,
        coding: str | None = None,
    ) -> Reply[Recommendations]:
        """Recommendations for a known user, with their HTML if `presented`.

        Without `algorithm`, the default one if it is ready, else the best that is. The
        HTML is made by the Service's `present` and cached with the answer, and so is its
        compression in `coding` when one is named. UnknownUser, UnknownAlgorithm,
        AlgorithmUnavailable or NotReady otherwise.
        """
        choice = self._engine.choose(algorithm)
        key = self._key(choice, user_id, n, k, filters)

        def answer() -> Recommendations:
            return _answer(choice, choice.model.profile_of(user_id), user_id, n, k, filters)

        def cheap() -> bool:
            profile = choice.model.profile_of(user_id)
            return (
                n <= CHEAP_N
                and len(profile.items) * n <= CHEAP_REASONS
                and choice.model.ranked_by_build(choice.algorithm, profile, n, filters)
            )

        return await self._answering.cached(key, answer, presented, coding, cheap)

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
        choice = self._engine.choose_for_visitor(algorithm, len(pairs))
        return await self._answering.off_loop(self._for_ratings, choice, pairs, n, k, filters)

    async def recommend_for_group(
        self,
        members: Sequence[Sequence[tuple[int, float]]],
        n: int = 10,
        strategy: str | None = None,
        exclude: Collection[int] = (),
    ) -> GroupRecommendations:
        """One list for a group, each member's ratings given as (movie_id, rating) pairs.

        Each member is scored as a visitor would be; films any member rated, and those in
        `exclude`, are never offered. UnknownStrategy (before any work), InvalidRatings
        naming the member, or NotReady.
        """
        chosen = group_strategy(strategy)
        model = self._engine.model
        availability = {status.name: status for status in self._engine.algorithms()}
        return await self._answering.off_loop(
            recommend_group, model, availability, members, n, chosen, exclude
        )

    def group_strategies(self) -> list[GroupStrategyInfo]:
        """Every group strategy (name, label, description), the default first."""
        return group_strategies()

    async def visit(
        self, asked: VisitRequest, render: Callable[[Visit], str] | None = None
    ) -> Reply[Visit]:
        """Apply the rating page's change, recommend from the result, and render it if asked.

        `render` is per call, unlike `present`: the page it makes depends on the request
        (its form, the fragment or the page), and it is not cached; it runs in the same hop.
        """

        def work() -> Reply[Visit]:
            visit = self._visit(asked)
            return Reply(visit, render(visit) if render else None)

        return await self._answering.off_loop(work)

    async def similar_users(self, user_id: int, k: int = DEFAULT_K) -> list[Neighbour]:
        """The k users most similar to a known user."""
        return await self._answering.off_loop(self._engine.model.similar_users, user_id, k)

    async def search_movies(self, query: str, limit: int) -> list[Movie]:
        """Films whose title matches the words typed, best first; the starters if none."""
        model = self._engine.model
        if not query:
            return await self._answering.off_loop(model.starter_movies, STARTERS)
        return await self._answering.off_loop(model.search_movies, query, limit)

    async def check_ratings(self, pairs: Sequence[tuple[int, float]]) -> Ratings:
        """Validate ratings against the catalogue without recommending (InvalidRatings)."""
        return await self._answering.off_loop(self._engine.model.check_ratings, pairs)

    async def import_ratings(self, data: bytes) -> ImportResult:
        """A rating export (IMDb, Letterboxd, MovieLens) matched to the catalogue; keeps nothing.

        InvalidImport, naming the row and column, for a file it cannot read.
        """
        return await self._answering.off_loop(import_ratings, self._engine.model, data)

    async def evaluation(self) -> tuple[dict[str, Any], bool] | None:
        """The latest offline evaluation and whether it ran on this server's data."""
        # Imported here: the evaluation code loads pandas, which serving does not need.
        from app.evaluation.report import read_latest

        return await asyncio.to_thread(read_latest, self.settings.data_dir / EVALUATION_DIR)

    def _visit(self, asked: VisitRequest) -> Visit:
        def recommend(ratings: Ratings) -> Recommendations:
            choice = self._engine.choose_for_visitor(asked.algorithm, len(ratings))
            return self._for_ratings(choice, ratings.pairs(), asked.n, asked.k, asked.filters)[0]

        return make_visit(self._engine.model, asked, recommend)

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

        def answer() -> Recommendations:
            return _answer(choice, choice.model.profile_for(ratings), None, n, k, filters)

        return self._answering.kept_or_made(key, answer), ratings

    def _key(self, choice: Choice, who: Hashable, n: int, k: int, filters: Filters) -> Hashable:
        # k changes nothing for algorithms without a neighbourhood: one entry for all k.
        k = k if choice.algorithm.uses_k else 0
        return (self._engine.generation, choice.algorithm.name, choice.note, who, n, k, filters)


def _answer(
    choice: Choice, profile: Profile, user_id: int | None, n: int, k: int, filters: Filters
) -> Recommendations:
    """The chosen algorithm's recommendations for `profile`, timed (blocking)."""
    with metrics.RECOMMEND_SECONDS.labels(choice.algorithm.name).time():
        return choice.model.recommend(
            choice.algorithm,
            profile,
            user_id=user_id,
            n=n,
            k=k,
            filters=filters,
            note=choice.note,
        )
