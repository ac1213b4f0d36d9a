"""Train/test splits of a ratings frame, per user: a seeded random holdout and a temporal one.

Both hold out round(fraction x n) of each user's n ratings (half rounds up) but always leave
at least one in training, so every test user can still be profiled from the training matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

DEFAULT_FRACTION = 0.2
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Split:
    """A named split: `train` and `test` frames with the ratings columns, disjoint."""

    name: str
    description: str
    train: pd.DataFrame
    test: pd.DataFrame


def holdout_counts(sizes: np.ndarray, fraction: float) -> np.ndarray:
    """How many of each user's ratings to hold out: round half up, at most all but one."""
    held = np.floor(sizes * fraction + 0.5).astype(np.int64)
    return np.minimum(held, np.maximum(sizes - 1, 0))


def random_holdout(
    ratings: pd.DataFrame, fraction: float = DEFAULT_FRACTION, seed: int = DEFAULT_SEED
) -> Split:
    """Hold out a random `fraction` of each user's ratings; the same seed gives the same split."""
    ordered = ratings.sort_values(["user_id", "movie_id"], kind="stable", ignore_index=True)
    # A random key per rating, drawn in a fixed order, decides who is held out within each user.
    keys = np.random.default_rng(seed).random(len(ordered))
    return _split_by_order(
        ordered,
        ordered.assign(_key=keys).sort_values(["user_id", "_key"], kind="stable").index,
        fraction,
        name="random",
        description=(
            f"per-user random holdout of {fraction:.0%} of each user's ratings (seed {seed})"
        ),
    )


def temporal_holdout(ratings: pd.DataFrame, fraction: float = DEFAULT_FRACTION) -> Split:
    """Hold out each user's latest `fraction` of ratings by timestamp (ties: higher movie id)."""
    if "timestamp" not in ratings.columns:
        raise ValueError("a temporal split needs a timestamp column")
    ordered = ratings.sort_values(["user_id", "movie_id"], kind="stable", ignore_index=True)
    latest_first = ordered.sort_values(
        ["user_id", "timestamp", "movie_id"], ascending=[True, False, False], kind="stable"
    ).index
    return _split_by_order(
        ordered,
        latest_first,
        fraction,
        name="temporal",
        description=f"per-user temporal holdout of each user's latest {fraction:.0%} of ratings",
    )


def _split_by_order(
    ordered: pd.DataFrame, order: pd.Index, fraction: float, *, name: str, description: str
) -> Split:
    """Hold out the first holdout_counts() rows of each user in `order`."""
    users = ordered["user_id"].to_numpy()[order]
    # Position of each row within its user's block (users are contiguous in `order`).
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    sizes = np.diff(np.r_[starts, len(users)])
    position = np.arange(len(users)) - np.repeat(starts, sizes)
    held = position < np.repeat(holdout_counts(sizes, fraction), sizes)
    test_mask = np.zeros(len(ordered), dtype=bool)
    test_mask[np.asarray(order)[held]] = True
    return Split(
        name=name,
        description=description,
        train=ordered[~test_mask].reset_index(drop=True),
        test=ordered[test_mask].reset_index(drop=True),
    )
