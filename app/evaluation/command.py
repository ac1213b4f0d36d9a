"""`movierec evaluate`: fetch the dataset as the server does, split, evaluate, report."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from app.config import Settings
from app.data.fetch import fetch_dataset
from app.data.movielens import load
from app.evaluation.group import GROUPS_PER_CELL, evaluate_groups
from app.evaluation.report import terminal_table, write_reports
from app.evaluation.run import LIST_LENGTH, Candidate, Evaluation, evaluate
from app.evaluation.split import (
    DEFAULT_SEED,
    Split,
    random_holdout,
    temporal_holdout,
)
from app.evaluation.visitor import (
    DEFAULT_VISITORS,
    PROFILE_LENGTHS,
    evaluate_visitors,
)
from app.progress import ProgressBar
from app.recommender import ALGORITHMS, DEFAULT_ALGORITHM, EASE
from app.recommender.ease import MIN_USEFUL_FILMS
from app.recommender.policy import PolicyStep

ORIGINAL_KS = (5, 10, 20, 50, 100)
# ml-25m has ratings of 59,047 films; EASE's default memory budget holds the 9,459 most rated
# (16%). EASE capped to the same share of a smaller release shows what the cap costs.
ML25M_RATED_FILMS = 59_047
SPLITS = ("random", "temporal", "both", "visitor", "group", "all")
"""`both` is random and temporal; `visitor` the new-visitor protocol; `group` the group
protocol; `all` every one."""


@dataclass(frozen=True)
class Options:
    """What to evaluate and where to write it; `out=None` means DATA_DIR/evaluation."""

    split: str = "both"
    n: int = LIST_LENGTH
    algorithms: tuple[str, ...] = tuple(ALGORITHMS)
    original_ks: tuple[int, ...] = ORIGINAL_KS
    seed: int = DEFAULT_SEED
    out: Path | None = None
    visitors: int = DEFAULT_VISITORS
    lengths: tuple[int, ...] = PROFILE_LENGTHS
    policy: tuple[PolicyStep, ...] = ()
    groups: int = GROUPS_PER_CELL


def candidates(algorithms: Sequence[str], original_ks: Sequence[int]) -> list[Candidate]:
    """Each algorithm with its default parameters; `original` once per neighbourhood size."""
    unknown = [name for name in algorithms if name not in ALGORITHMS]
    if unknown:
        raise ValueError(
            f"unknown algorithm(s) {', '.join(unknown)}; known: {', '.join(ALGORITHMS)}"
        )
    chosen: list[Candidate] = []
    for name in algorithms:
        if name == "original" and original_ks:
            chosen += [Candidate(name, {"k": k}) for k in original_ks]
        else:
            chosen.append(Candidate(name))
    return chosen


def at_scale_cap(films: int) -> int:
    """How many of `films` EASE keeps at the share its default budget keeps of ml-25m's."""
    share = EASE().max_films / ML25M_RATED_FILMS
    return max(MIN_USEFUL_FILMS, min(films, round(films * share)))


def run(settings: Settings, options: Options, stream: TextIO | None = None) -> Evaluation:
    """Fetch, load, split, evaluate, write latest.json and latest.md, print the table."""
    out = sys.stdout if stream is None else stream
    bar = ProgressBar()
    chosen = candidates(options.algorithms, options.original_ks)
    folder = asyncio.run(fetch_dataset(settings, bar))
    release = folder
    dataset = load(folder, with_timestamps=True)
    ratings = dataset.ratings
    if "ease" in options.algorithms:
        cap = at_scale_cap(ratings["movie_id"].nunique())
        chosen.append(Candidate("ease", {"max_films": cap}))
    splits: list[Split] = []
    if options.split in ("random", "both", "all"):
        splits.append(random_holdout(ratings, seed=options.seed))
    if options.split in ("temporal", "both", "all"):
        splits.append(temporal_holdout(ratings))
    evaluation = evaluate(
        ratings,
        splits,
        chosen,
        k=options.n,
        seed=options.seed,
        dataset={"name": release.name, "source": settings.source},
        progress=bar,
    )
    if options.split in ("visitor", "all"):
        visitor = evaluate_visitors(
            ratings,
            options.algorithms,
            policy=options.policy,
            lengths=options.lengths,
            visitors=options.visitors,
            seed=options.seed,
            k=options.n,
            progress=bar,
            movies=dataset.movies,
        )
        evaluation = dataclasses.replace(evaluation, visitor=visitor)
    if options.split in ("group", "all"):
        group = evaluate_groups(
            ratings,
            options.policy,
            groups=options.groups,
            visitors=options.visitors,
            seed=options.seed,
            k=options.n,
            progress=bar,
        )
        evaluation = dataclasses.replace(evaluation, group=group)
    json_path, markdown_path = write_reports(
        evaluation, options.out or settings.data_dir / "evaluation"
    )
    out.write(terminal_table(evaluation))
    out.write(f"\nDefault algorithm: {DEFAULT_ALGORITHM}\nWrote {json_path} and {markdown_path}\n")
    return evaluation
