"""Which algorithm answers a visitor who did not choose one, by how many films they rated.

Measured with `movierec evaluate --split visitor` on ml-latest-small (README, Evaluation;
the table is on /about): with few ratings the similarity-weighted user kNN, from its own
30 neighbours, beats EASE (and popularity) by a wide margin when the films are drawn at
random and matches it when they come from the starter grid; from 10 ratings on EASE, the
default for known users, is as good or better. A known user's page keeps the default.
"""

from __future__ import annotations

from app.recommender import EASE, WeightedUserKNN
from app.recommender.policy import PolicyStep, policy_step

VISITOR_POLICY: tuple[PolicyStep, ...] = (
    PolicyStep(below=10, algorithm=WeightedUserKNN.name, k=30),
    PolicyStep(below=None, algorithm=EASE.name),
)
"""Read top to bottom: the first step whose `below` exceeds the number of ratings answers."""


def visitor_step(rating_count: int) -> PolicyStep:
    """The policy's algorithm (and neighbourhood size, None for its own) for this many ratings."""
    return policy_step(VISITOR_POLICY, rating_count)
