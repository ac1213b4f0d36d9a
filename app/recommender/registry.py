"""Every algorithm by name, and the default, chosen by the offline evaluation (see README)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.recommender.base import Algorithm
from app.recommender.ease import EASE
from app.recommender.itemknn import ItemKNN
from app.recommender.original import UserKNN
from app.recommender.popularity import Popularity
from app.recommender.rp3beta import RP3Beta
from app.recommender.userknn import WeightedUserKNN

ALGORITHMS: dict[str, Callable[..., Algorithm]] = {
    UserKNN.name: UserKNN,
    Popularity.name: Popularity,
    WeightedUserKNN.name: WeightedUserKNN,
    ItemKNN.name: ItemKNN,
    RP3Beta.name: RP3Beta,
    EASE.name: EASE,
}
"""Name -> factory; calling it with no arguments gives the evaluated default parameters."""

DEFAULT_ALGORITHM = "ease"
"""Best measured nDCG@10 on ml-latest-small (see README, Evaluation)."""

FALLBACK_ALGORITHM = "itemknn"
"""What to use when the default refuses a dataset with TooLarge (it scales with the data)."""

PREFERENCE = (DEFAULT_ALGORITHM, FALLBACK_ALGORITHM, "userknn-weighted", "original")
"""Who answers a request without a choice: the first of these that is fitted, in order of
measured nDCG@10 on ml-latest-small. The last two need no fit, so they serve at once."""


def create(name: str, **params: Any) -> Algorithm:
    """A new, unfitted instance of the named algorithm; KeyError names the known ones."""
    try:
        factory = ALGORITHMS[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}") from None
    return factory(**params)
