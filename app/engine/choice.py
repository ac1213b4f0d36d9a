"""Who answers a request: pure functions of the served model and each algorithm's availability.

The visitor policy lives here too. Measured with `movierec evaluate --split visitor` on
ml-latest-small (README, Evaluation; the table is on /about): with few ratings the
similarity-weighted user kNN, from its own 30 neighbours, beats EASE (and popularity) by a
wide margin when the films are drawn at random and matches it when they come from the
starter grid; from 10 ratings on EASE, the default for known users, is as good or better.
A known user's page keeps the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from app.config import ALL_ALGORITHMS, ConfigError, Settings
from app.engine.model import Model
from app.engine.status import AlgorithmStatus, AlgorithmUnavailable, Availability, UnknownAlgorithm
from app.recommender import (
    ALGORITHMS,
    DEFAULT_ALGORITHM,
    EASE,
    PREFERENCE,
    Algorithm,
    WeightedUserKNN,
)
from app.recommender.policy import PolicyStep, policy_step

VISITOR_POLICY: tuple[PolicyStep, ...] = (
    PolicyStep(below=10, algorithm=WeightedUserKNN.name, k=30),
    PolicyStep(below=None, algorithm=EASE.name),
)
"""Read top to bottom: the first step whose `below` exceeds the number of ratings answers."""

NOT_ENABLED = "not enabled on this server (ALGORITHMS)"


class Choice(NamedTuple):
    """The model and fitted algorithm that answer a request, and a note if it was not asked for."""

    model: Model
    algorithm: Algorithm
    note: str
    k: int | None = None
    """The neighbourhood size the choice comes with (the visitor policy's), else the request's."""


def check_algorithms(settings: Settings) -> None:
    """ConfigError unless every name in ALGORITHMS is a known algorithm."""
    unknown = [name for name in settings.algorithms if name not in ALGORITHMS]
    if settings.algorithms != ALL_ALGORITHMS and unknown:
        raise ConfigError(
            f"ALGORITHMS must list known algorithms ({', '.join(ALGORITHMS)}) or be all; "
            f"unknown: {', '.join(unknown)}"
        )


def visitor_step(rating_count: int) -> PolicyStep:
    """The policy's algorithm (and neighbourhood size, None for its own) for this many ratings."""
    return policy_step(VISITOR_POLICY, rating_count)


def choose(model: Model, availability: Mapping[str, AlgorithmStatus], name: str | None) -> Choice:
    """The algorithm that answers a request for `name` (None: the best ready one).

    UnknownAlgorithm, or AlgorithmUnavailable with the reason.
    """
    if name is not None:
        if name not in ALGORITHMS:
            raise UnknownAlgorithm(
                f"Unknown algorithm {name!r}; choose one of {', '.join(ALGORITHMS)}."
            )
        fitted = model.algorithms.get(name)
        if fitted is None:
            status = availability[name]
            if status.availability is Availability.PREPARING:
                raise AlgorithmUnavailable(
                    f"{status.label} is still being prepared; try again in a moment "
                    "or choose another algorithm."
                )
            raise AlgorithmUnavailable(f"{status.label} is not available: {status.reason}.")
        return Choice(model, fitted, "")
    # The original is last in PREFERENCE and always fitted.
    fitted = next(model.algorithms[n] for n in PREFERENCE if n in model.algorithms)
    default = availability[DEFAULT_ALGORITHM]
    if fitted.name == DEFAULT_ALGORITHM or default.reason == NOT_ENABLED:
        return Choice(model, fitted, "")
    why = (
        "is still being prepared"
        if default.availability is Availability.PREPARING
        else f"is not available here ({default.reason})"
    )
    return Choice(model, fitted, f"{default.label} {why}; these come from {fitted.label}.")


def choose_for_visitor(
    model: Model,
    availability: Mapping[str, AlgorithmStatus],
    name: str | None,
    rating_count: int,
) -> Choice:
    """As choose(), but without `name` the visitor policy's pick for this many ratings.

    While the policy's algorithm is not ready, the usual choice (and its note) answers.
    """
    step = visitor_step(rating_count)
    if name is not None or step.algorithm not in model.algorithms:
        return choose(model, availability, name)
    return Choice(model, model.algorithms[step.algorithm], "", step.k)
