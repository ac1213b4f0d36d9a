"""A new visitor who brings their whole history as an import, beside the same users known.

The visitor split's users are held out of the training matrix; each brings every rating of
their pool (the part not held out) as an export would carry it: an IMDb ratings file (1-10
stars, matched back through links.csv's imdbId), or `movieId,rating` where the release has no
links. It is read and matched by app.data.imports, as POST /api/imports does, and ranked as
an ad-hoc profile. "Known" is the same users with the same pool ratings inside the training
matrix (each algorithm fitted again with them), ranked as known users: the figure an import
should reach, up to the films it cannot match.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from app.data.catalogue import NO_LINK, Catalogue
from app.data.imports import match, read_import
from app.evaluation.metrics import UserScores, score_user
from app.evaluation.visitor import (
    VisitorCase,
    VisitorCell,
    VisitorRow,
    VisitorSplit,
    VisitorTable,
    draw_cases,
)
from app.recommender import Algorithm, Profile, RatingMatrix, TooLarge, create

IMPORTED = "imported"
"""The draw's name: whole histories, brought as an import."""


def export_text(case: VisitorCase, catalogue: Catalogue | None) -> bytes:
    """The visitor's ratings as an export: IMDb's where films have IMDb ids, else MovieLens'."""
    if catalogue is None or bool(np.all(catalogue.imdb_ids == NO_LINK)):
        rows = [f"{m},{r:g}" for m, r in zip(case.movie_ids, case.ratings, strict=True)]
        return ("movieId,rating\n" + "\n".join(rows) + "\n").encode()
    lines = ["Const,Your Rating,Title"]
    for movie_id, rating in zip(case.movie_ids.tolist(), case.ratings.tolist(), strict=True):
        position = catalogue.position(movie_id)
        imdb = NO_LINK if position is None else int(catalogue.imdb_ids[position])
        if imdb != NO_LINK:
            lines.append(f"tt{imdb:07d},{round(rating * 2)},film {movie_id}")
    return ("\r\n".join(lines) + "\r\n").encode()


def imported_case(case: VisitorCase, catalogue: Catalogue | None) -> VisitorCase:
    """The visitor as an import of their whole pool gives them."""
    data = export_text(case, catalogue)
    found = match(read_import(data), catalogue) if catalogue is not None else None
    if found is None:
        return case
    movies = np.array([m for m, _ in found.ratings], dtype=np.int64)
    values = np.array([r for _, r in found.ratings], dtype=np.float64)
    return VisitorCase(case.user_id, movies, values, case.relevant)


def imported_table(
    split: VisitorSplit,
    fitted: Mapping[str, Algorithm],
    algorithms: Sequence[str],
    movies: pd.DataFrame | None,
    k: int,
    seed: int,
) -> VisitorTable:
    """nDCG@k of whole histories imported (visitors held out) and known (visitors trained on)."""
    catalogue = Catalogue.from_frame(movies) if movies is not None else None
    matrix = RatingMatrix.from_frame(split.train)
    known = RatingMatrix.from_frame(pd.concat([split.train, split.pool], ignore_index=True))
    cases = draw_cases(split, (), seed)
    imported = [imported_case(case, catalogue) for case in cases]
    cells: list[VisitorCell] = []
    for name in algorithms:
        if name not in fitted:
            continue
        try:
            trained = create(name).fit(known)
        except TooLarge:
            continue
        profiles = [matrix.adhoc_profile(c.movie_ids, c.ratings) for c in imported]
        cells.append(_cell(f"{name} {IMPORTED}", fitted[name], matrix, profiles, cases, k))
        rows = [known.profile(known.row(case.user_id)) for case in cases]
        cells.append(_cell(f"{name} known", trained, known, rows, cases, k))
    length = int(statistics.median(len(c.movie_ids) for c in cases)) if cases else 0
    described = (
        "each visitor's whole history (median "
        f"{length} ratings) brought as an import, beside the same users known to the model"
    )
    return VisitorTable(
        IMPORTED, described, [cell.algorithm for cell in cells], [VisitorRow(length, cells)]
    )


def _cell(
    name: str,
    algorithm: Algorithm,
    matrix: RatingMatrix,
    profiles: Sequence[Profile],
    cases: Sequence[VisitorCase],
    k: int,
) -> VisitorCell:
    scores: list[UserScores] = []
    for profile, case in zip(profiles, cases, strict=True):
        items = algorithm.rank(profile, k, None).items
        scores.append(score_user(matrix.item_ids[items], case.relevant, k))

    def mean(metric: str) -> float:
        return float(np.mean([getattr(s, metric) for s in scores])) if scores else float("nan")

    return VisitorCell(
        algorithm=name,
        ratings=int(statistics.median(len(p.items) for p in profiles)) if profiles else 0,
        ndcg=mean("ndcg"),
        precision=mean("precision"),
        recall=mean("recall"),
        map=mean("average_precision"),
        hit_rate=mean("hit"),
        users=len(scores),
        rank_ms_median=float("nan"),
    )
