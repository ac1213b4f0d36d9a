"""A visitor policy: which algorithm answers a visitor, by how many films they rated.

A serving decision, so it lives with the recommenders: the engine reads it to answer, and
the evaluation (evaluation/visitor.py) measures it, without either importing the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class PolicyStep(NamedTuple):
    """Visitors with fewer than `below` ratings (None: any number) get `algorithm` with `k`."""

    below: int | None
    algorithm: str
    k: int | None = None


def policy_step(policy: Sequence[PolicyStep], rating_count: int) -> PolicyStep:
    """The first step whose `below` exceeds `rating_count` (the last step catches the rest)."""
    for step in policy:
        if step.below is None or rating_count < step.below:
            return step
    return policy[-1]
