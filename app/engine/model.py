"""The model a build produces: the rating matrix, the catalogue and the fitted algorithms.

Immutable: a fit that finishes makes a new Model with one more algorithm, swapped in by the
Engine with one assignment, so a request always sees one consistent model. Every method is
a plain blocking query; the Service calls them off the event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from app.data.catalogue import Catalogue, Movie
from app.engine.answers import Recommendations, assemble
from app.engine.cache import LRUCache
from app.engine.manifest import Manifest
from app.engine.queries import NO_FILTERS, Filters, ItemFacts, Ratings
from app.engine.toplists import TopLists
from app.recommender import (
    ORIGINAL,
    Algorithm,
    Neighbour,
    OriginalUserKNN,
    Profile,
    Ranking,
    RatingMatrix,
)
from app.recommender.starters import starter_items

STARTER_GRID = 48
"""Starter films worked out per model; the page shows the first STARTERS of them."""


class Derived:
    """What is worked out from the matrix and catalogue once, shared by a build's Models."""

    def __init__(self, matrix: RatingMatrix, catalogue: Catalogue) -> None:
        self.matrix = matrix
        self.catalogue = catalogue
        # Filters repeat (a visitor changes stars, not the genre): keep their item masks.
        self.allowed: LRUCache[np.ndarray] = LRUCache(64)

    @cached_property
    def facts(self) -> ItemFacts:
        """Year and genres of every item, looked up once, when a filter first needs them."""
        return ItemFacts.of(self.matrix, self.catalogue)

    @cached_property
    def popularity(self) -> np.ndarray:
        """Number of ratings of each catalogue film (by catalogue position)."""
        items, found = self.matrix.items_of(self.catalogue.movie_ids)
        return np.where(found, self.matrix.item_count[items], 0)

    @cached_property
    def starters(self) -> np.ndarray:
        """Catalogue positions of the films the rating page offers first, best first."""
        items = starter_items(self.matrix, STARTER_GRID)
        found = (self.catalogue.position(int(movie)) for movie in self.matrix.item_ids[items])
        return np.array([position for position in found if position is not None], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Model:
    """The matrix, the catalogue and the fitted algorithms by name (`original` always).

    `toplists` holds known users' lists the build ranked, by algorithm name (the default's).
    """

    matrix: RatingMatrix
    catalogue: Catalogue
    algorithms: Mapping[str, Algorithm]
    from_snapshot: bool
    derived: Derived = field(repr=False)
    manifest: Manifest | None = None
    path: Path | None = None
    toplists: Mapping[str, TopLists] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        matrix: RatingMatrix,
        catalogue: Catalogue,
        *,
        from_snapshot: bool,
        manifest: Manifest | None = None,
        path: Path | None = None,
    ) -> Model:
        """A model with the original fitted: it needs nothing but the matrix.

        `manifest` and `path` say which snapshot it was mapped from, if any.
        """
        original = OriginalUserKNN().fit(matrix)
        derived = Derived(matrix, catalogue)
        return cls(matrix, catalogue, {ORIGINAL: original}, from_snapshot, derived, manifest, path)

    def with_algorithm(self, fitted: Algorithm) -> Model:
        """The same model with one more fitted algorithm."""
        # Lists ranked by another fit of the same algorithm would no longer be its answers.
        lists = {name: kept for name, kept in self.toplists.items() if name != fitted.name}
        algorithms = {**self.algorithms, fitted.name: fitted}
        return dataclasses.replace(self, algorithms=algorithms, toplists=lists)

    def with_toplists(self, lists: TopLists) -> Model:
        """The same model answering known users from `lists` (ranked by its fitted algorithm).

        ValueError unless the lists have one row per user of the matrix.
        """
        if lists.algorithm not in self.algorithms or len(lists.items) != self.matrix.n_users:
            raise ValueError(f"the {lists.algorithm} lists do not belong to this model")
        return dataclasses.replace(self, toplists={**self.toplists, lists.algorithm: lists})

    def profile_of(self, user_id: int) -> Profile:
        """A known user's ratings; UnknownUser if the id is not in the data."""
        return self.matrix.profile(self.matrix.row(user_id))

    def profile_for(self, ratings: Ratings) -> Profile:
        """A visitor's ratings as a profile compared with every user (none excluded)."""
        return self.matrix.adhoc_profile(
            np.array(ratings.movie_ids, dtype=np.int64), np.array(ratings.values)
        )

    def recommend(
        self,
        algorithm: Algorithm,
        profile: Profile,
        *,
        user_id: int | None,
        n: int,
        k: int,
        filters: Filters = NO_FILTERS,
        note: str = "",
    ) -> Recommendations:
        """The n best films for the profile by `algorithm`, with their reasons.

        A known user's list without filters comes from the build's lists when they are long
        enough; anything else is ranked here.
        """
        lists = self._lists_for(algorithm, profile, n, filters)
        if lists is not None and profile.row is not None:
            ranking = lists.ranking(profile.row, n)
        elif filters.active:
            allowed = self.derived.allowed.get(filters)
            if allowed is None:
                allowed = filters.allowed(self.derived.facts)
                self.derived.allowed.put(filters, allowed)
            # Rank everything, then keep the first n that pass: the order is the algorithm's.
            everything = algorithm.rank(profile, self.matrix.n_items, k)
            keep = np.flatnonzero(allowed[everything.items])[:n]
            ranking = Ranking(
                everything.items[keep],
                everything.scores[keep],
                everything.neighbours,
                everything.similarities,
            )
        else:
            ranking = algorithm.rank(profile, n, k)
        return assemble(
            self.matrix,
            self.catalogue,
            algorithm,
            profile,
            ranking,
            user_id=user_id,
            n=n,
            k=k,
            note=note,
        )

    def ranked_by_build(
        self, algorithm: Algorithm, profile: Profile, n: int, filters: Filters
    ) -> bool:
        """Whether `recommend` reads this list from the build's lists rather than ranking it."""
        return self._lists_for(algorithm, profile, n, filters) is not None

    def _lists_for(
        self, algorithm: Algorithm, profile: Profile, n: int, filters: Filters
    ) -> TopLists | None:
        lists = self.toplists.get(algorithm.name)
        if (
            lists is not None
            and not filters.active
            and profile.row is not None
            and n <= lists.length
            and self.algorithms.get(algorithm.name) is algorithm
        ):
            return lists
        return None

    def similar_users(self, user_id: int, k: int) -> list[Neighbour]:
        """The k users most like this one (itself excluded), ties to the lower user id."""
        original = self.algorithms[ORIGINAL]
        assert isinstance(original, OriginalUserKNN)
        rows, similarities = original.neighbours(self.profile_of(user_id), k)
        return [
            Neighbour(int(self.matrix.user_ids[row]), float(similarity))
            for row, similarity in zip(rows, similarities, strict=True)
        ]

    def check_ratings(self, pairs: Sequence[tuple[int, float]]) -> Ratings:
        """Validate ratings against the catalogue (InvalidRatings)."""
        return Ratings.checked(pairs, self.catalogue)

    def movies(self, movie_ids: Sequence[int]) -> list[Movie]:
        """The catalogue entries of these films, in the order given (unknown ids skipped)."""
        return [movie for movie in map(self.catalogue.get, movie_ids) if movie is not None]

    def search_movies(self, query: str, limit: int) -> list[Movie]:
        """Films whose title matches the words typed, best first."""
        return self.catalogue.search(query, self.derived.popularity, limit)

    def starter_movies(self, limit: int) -> list[Movie]:
        """The films to offer someone who has rated nothing (the starter grid, at most 48)."""
        return [self.catalogue.at(int(position)) for position in self.derived.starters[:limit]]

    def user_ratings(self, user_id: int, limit: int) -> list[tuple[int, float]]:
        """A known user's ratings (their highest first, at most `limit`), to start from."""
        profile = self.profile_of(user_id)
        order = np.lexsort((profile.items, -profile.ratings))[:limit]
        return [
            (int(self.matrix.item_ids[profile.items[i]]), float(profile.ratings[i])) for i in order
        ]

    @property
    def genres(self) -> tuple[str, ...]:
        """Every genre in the catalogue (worked out once)."""
        return self.catalogue.genres
