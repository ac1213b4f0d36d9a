"""The recommenders: a shared rating matrix, the estimator protocol and the algorithms.

NumPy/SciPy only: no web, no I/O.
"""

from app.recommender.base import Algorithm, NotFitted, Ranking, Reason, TooLarge, top
from app.recommender.ease import EASE
from app.recommender.itemknn import ItemKNN, co_rated_pairs
from app.recommender.matrix import Profile, RatingMatrix, UnknownUser
from app.recommender.original import Neighbour, OriginalUserKNN, neighbours_rated
from app.recommender.popularity import Popularity
from app.recommender.registry import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    FALLBACK_ALGORITHM,
    ORIGINAL,
    PREFERENCE,
    create,
)
from app.recommender.rp3beta import RP3Beta
from app.recommender.userknn_weighted import WeightedUserKNN

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHM",
    "EASE",
    "FALLBACK_ALGORITHM",
    "ORIGINAL",
    "PREFERENCE",
    "Algorithm",
    "ItemKNN",
    "Neighbour",
    "NotFitted",
    "OriginalUserKNN",
    "Popularity",
    "Profile",
    "RP3Beta",
    "Ranking",
    "RatingMatrix",
    "Reason",
    "TooLarge",
    "UnknownUser",
    "WeightedUserKNN",
    "co_rated_pairs",
    "create",
    "neighbours_rated",
    "top",
]
