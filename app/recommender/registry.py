"""Every algorithm by name, and the default, chosen by the offline evaluation (see README).

Adding an algorithm: write its module (a class that follows `Algorithm`, describing itself)
and list the class here; pages, the API and the evaluation pick it up from this table.
"""

from __future__ import annotations

from typing import Any

from app.recommender.base import Algorithm
from app.recommender.ease import EASE
from app.recommender.itemknn import ItemKNN
from app.recommender.original import OriginalUserKNN
from app.recommender.popularity import Popularity
from app.recommender.rp3beta import RP3Beta
from app.recommender.userknn_weighted import WeightedUserKNN

ALGORITHMS: dict[str, type[Algorithm]] = {
    algorithm.name: algorithm
    for algorithm in (
        OriginalUserKNN,
        Popularity,
        WeightedUserKNN,
        ItemKNN,
        RP3Beta,
        EASE,
    )
}
"""Name -> class; calling it with no arguments gives the evaluated default parameters."""

ORIGINAL = OriginalUserKNN.name
"""The seed design: always fitted, since it needs no fit and serves as soon as the data is in."""

DEFAULT_ALGORITHM = EASE.name
"""Best measured nDCG@10 on ml-latest-small (see README, Evaluation)."""

FALLBACK_ALGORITHM = ItemKNN.name
"""What to use when the default refuses a dataset with TooLarge (it scales with the data)."""

PREFERENCE = (DEFAULT_ALGORITHM, FALLBACK_ALGORITHM, WeightedUserKNN.name, ORIGINAL)
"""Who answers a request without a choice: the first of these that is fitted, in order of
measured nDCG@10 on ml-latest-small. The last two need no fit, so they serve at once."""


def create(name: str, **params: Any) -> Algorithm:
    """A new, unfitted instance of the named algorithm; KeyError names the known ones."""
    try:
        algorithm = ALGORITHMS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}") from None
    return algorithm(**params)
