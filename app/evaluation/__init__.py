"""Offline evaluation: split the ratings, fit each algorithm on the training part, score top-k.

NumPy/SciPy/pandas only and no web: `movierec evaluate` drives it from the command line.
"""

from app.evaluation.metrics import UserScores, coverage, popularity_median, score_user
from app.evaluation.run import AlgorithmResult, Candidate, Evaluation, SplitResult, evaluate
from app.evaluation.split import (
    Split,
    random_holdout,
    temporal_holdout,
)

__all__ = [
    "AlgorithmResult",
    "Candidate",
    "Evaluation",
    "Split",
    "SplitResult",
    "UserScores",
    "coverage",
    "evaluate",
    "popularity_median",
    "random_holdout",
    "score_user",
    "temporal_holdout",
]
