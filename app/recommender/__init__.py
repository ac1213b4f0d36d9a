"""The recommenders: a shared rating matrix, the estimator protocol and the algorithms.

NumPy/SciPy only: no web, no I/O.
"""

from app.recommender.base import Algorithm, NotFitted, Ranking, Reason, TooLarge, top
from app.recommender.matrix import Profile, RatingMatrix, UnknownUser
from app.recommender.original import Neighbour, Recommendation, UserKNN

__all__ = [
    "Algorithm",
    "Neighbour",
    "NotFitted",
    "Profile",
    "Ranking",
    "RatingMatrix",
    "Reason",
    "Recommendation",
    "TooLarge",
    "UnknownUser",
    "UserKNN",
    "top",
]
