"""Known users' lists, built once: the build's lists are the computed answers, to the bit.

`movierec build` ranks every known user by the default algorithm (EASE) and keeps the first
50 films of each; a known user's default request is sliced from them. These tests check the
lists against the computed ranking for every user of ml-latest-small and the tiny release,
that only a default request without filters and with n up to 50 is served from them, and that
a snapshot without them (an older build) still serves, computing each answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.data import snapshot
from app.data.catalogue import Catalogue
from app.data.movielens import load
from app.engine.build import build_snapshot, map_snapshot, snapshot_path
from app.engine.estimate import estimate_fits
from app.engine.model import Model
from app.engine.queries import NO_FILTERS, Filters
from app.engine.toplists import LENGTH, TopLists, build_toplists
from app.recommender import EASE, Popularity, RatingMatrix, top
from app.recommender.base import leading_rows, top_rows
from tests.conftest import TINY_MOVIES, TINY_RATINGS, require_real_zip

EASE_ONLY = ("original", "ease")


def quiet(what: str, done: int, total: int | None) -> None:
    """A progress callback that shows nothing."""


def without_lists(path: Path, older: Path) -> None:
    """Copy the snapshot at `path` to `older` as a build before the lists would have written it."""
    arrays, meta = snapshot.read(path, {})
    kept = {name: array for name, array in arrays.items() if not name.startswith("toplists.")}
    assert len(kept) < len(arrays), "the build wrote no lists"
    snapshot.write(older, kept, meta)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, Model]:
    """ml-latest-small built with EASE: the model mapped with its lists, and without them."""
    folder = tmp_path_factory.mktemp("small")
    settings = Settings(
        source=str(require_real_zip()), data_dir=folder / "data", algorithms=EASE_ONLY
    )
    build_snapshot(settings, EASE_ONLY, None, quiet)
    path = snapshot_path(settings, "ml-latest-small")
    older = folder / "older.snapshot"
    without_lists(path, older)
    return map_snapshot(settings, path, {}), map_snapshot(settings, older, {})


@pytest.fixture
def tiny(tmp_path: Path) -> Model:
    """The tiny release with EASE over every rated film (the default threshold leaves none)."""
    (tmp_path / "ratings.csv").write_text(TINY_RATINGS)
    (tmp_path / "movies.csv").write_text(TINY_MOVIES)
    dataset = load(tmp_path)
    matrix = RatingMatrix.from_frame(dataset.ratings)
    model = Model.of(matrix, Catalogue.from_frame(dataset.movies), from_snapshot=False)
    model = model.with_algorithm(EASE(l2=1.0, min_ratings=1).fit(matrix))
    return model.with_algorithm(Popularity().fit(matrix))


def answers(model: Model, user_id: int, n: int, name: str = "ease", **asked: Filters) -> list[int]:
    """The films `model` recommends to a known user, by id, best first."""
    algorithm = model.algorithms[name]
    found = model.recommend(
        algorithm, model.profile_of(user_id), user_id=user_id, n=n, k=5, **asked
    )
    return [movie.movie_id for movie in found.movies]


def test_every_known_user_of_ml_latest_small_gets_the_computed_list(
    small: tuple[Model, Model],
) -> None:
    listed, computed = small
    assert "ease" in listed.toplists and not computed.toplists
    ease_listed, ease_computed = listed.algorithms["ease"], computed.algorithms["ease"]
    for user_id in listed.matrix.user_ids.tolist():
        for n in (LENGTH, 5):
            mine = listed.recommend(
                ease_listed, listed.profile_of(user_id), user_id=user_id, n=n, k=5
            )
            theirs = computed.recommend(
                ease_computed, computed.profile_of(user_id), user_id=user_id, n=n, k=5
            )
            # Ids, order, scores (to the bit), titles and reasons: the whole answer.
            assert mine == theirs, user_id
    assert len(mine.movies) == 5 and all(m.reasons for m in mine.movies)


def test_the_tiny_release_gets_the_computed_list_for_every_user_and_length(tiny: Model) -> None:
    listed = tiny.with_toplists(build_toplists(tiny.algorithms["ease"], tiny.matrix))
    ease = tiny.algorithms["ease"]
    for user_id in tiny.matrix.user_ids.tolist():
        for n in range(1, 7):
            profile = tiny.profile_of(user_id)
            mine = listed.recommend(ease, profile, user_id=user_id, n=n, k=5)
            assert mine == tiny.recommend(ease, profile, user_id=user_id, n=n, k=5)
    # User 1 rated 10 and 20: the other three rated films, and no more, are left to list.
    assert len(listed.toplists["ease"].ranking(0, LENGTH).items) == 3


def test_only_a_default_request_without_filters_and_within_the_lists_is_served_from_them(
    tiny: Model,
) -> None:
    # Lists that differ from the computed ones (the computed order, reversed) show which
    # requests are answered from them.
    computed = answers(tiny, 1, 3)
    assert len(computed) == 3
    items = tiny.matrix.items_of(np.array(computed[::-1]))[0]
    rows = np.tile(np.asarray(items, dtype=np.int32), (tiny.matrix.n_users, 1))
    scores = np.tile(np.array([3.0, 2.0, 1.0], dtype=np.float32), (tiny.matrix.n_users, 1))
    doctored = tiny.with_toplists(TopLists("ease", rows, scores))
    assert answers(doctored, 1, 3) == computed[::-1]
    assert answers(doctored, 1, 2) == computed[::-1][:2]
    # Longer than the lists, filtered, another algorithm, a visitor: computed as before.
    assert answers(doctored, 1, 4) == answers(tiny, 1, 4)
    recent = Filters(year_from=1990)
    assert len(answers(tiny, 1, 3, filters=recent)) == 2
    assert answers(doctored, 1, 3, filters=recent) == answers(tiny, 1, 3, filters=recent)
    assert answers(doctored, 1, 3, "popularity") == answers(tiny, 1, 3, "popularity")
    visitor = doctored.profile_for(doctored.check_ratings([(10, 5.0), (20, 3.0)]))
    ease = doctored.algorithms["ease"]
    found = doctored.recommend(ease, visitor, user_id=None, n=3, k=5)
    assert [movie.movie_id for movie in found.movies] == computed
    # ranked_by_build says which (the Service makes those answers on the event loop).
    known = doctored.profile_of(1)
    assert doctored.ranked_by_build(ease, known, 3, NO_FILTERS)
    assert not doctored.ranked_by_build(ease, known, 4, NO_FILTERS)
    assert not doctored.ranked_by_build(ease, known, 3, recent)
    assert not doctored.ranked_by_build(doctored.algorithms["popularity"], known, 3, NO_FILTERS)
    assert not doctored.ranked_by_build(ease, visitor, 3, NO_FILTERS)
    assert not tiny.ranked_by_build(ease, known, 3, NO_FILTERS)


def test_lists_of_another_fit_are_dropped_with_it(tiny: Model) -> None:
    listed = tiny.with_toplists(build_toplists(tiny.algorithms["ease"], tiny.matrix))
    refitted = listed.with_algorithm(EASE(l2=50.0, min_ratings=1).fit(tiny.matrix))
    assert "ease" in listed.toplists and "ease" not in refitted.toplists
    with pytest.raises(ValueError, match="do not belong"):
        tiny.with_toplists(TopLists("ease", np.zeros((1, 3), np.int32), np.zeros((1, 3))))


def test_rows_are_cut_and_ordered_as_top_orders_one_row() -> None:
    # Half stars and -inf make many ties, also at the cut.
    rng = np.random.default_rng(7)
    values = rng.integers(0, 6, size=(200, 40)).astype(np.float32) / 2
    values[rng.random(values.shape) < 0.3] = -np.inf
    for count in (1, 5, 39, 40, 50):
        columns, scores = top_rows(values, count)
        for row in range(len(values)):
            expected = top(values[row].astype(np.float64), count)
            assert columns[row].tolist() == expected.tolist(), (count, row)
            assert scores[row].tolist() == values[row, expected].tolist()


def test_the_build_writes_the_lists_and_says_what_they_took(tmp_path: Path) -> None:
    settings = Settings(
        source=str(require_real_zip()), data_dir=tmp_path / "data", algorithms=EASE_ONLY
    )
    manifest = build_snapshot(settings, EASE_ONLY, None, quiet)
    arrays, _ = snapshot.read(snapshot_path(settings, "ml-latest-small"), {})
    assert arrays["toplists.ease.items"].shape == (610, LENGTH)
    assert arrays["toplists.ease.scores"].dtype == np.float32
    assert manifest.phases["toplists"] > 0


def test_a_dry_run_says_what_the_lists_would_take(tmp_path: Path) -> None:
    settings = Settings(
        source=str(require_real_zip()), data_dir=tmp_path / "data", algorithms=EASE_ONLY
    )
    estimates = {e.name: e for e in estimate_fits(settings, EASE_ONLY, quiet)}
    lists = estimates["ease lists"]
    # 610 users x 50 films x 8 bytes, plus the blocks being ranked.
    assert lists.bytes > 610 * LENGTH * 8 and lists.seconds > 0
    assert "best 50" in lists.note
    assert "ease lists" not in {e.name for e in estimate_fits(settings, ["original"], quiet)}


def test_the_strongest_reasons_are_picked_as_a_stable_sort_picks_them() -> None:
    # Half-star contributions tie often, also at the cut; short tables (up to SMALL_SORT
    # values) and long ones are picked by different steps.
    rng = np.random.default_rng(11)
    for rows in (1, 2, 3, 7, 341, 342, 500, 2000):
        values = rng.integers(-4, 6, size=(rows, 12)).astype(np.float64) / 2
        expected = np.argsort(-values, axis=0, kind="stable")[:3]
        assert leading_rows(values, 3).tolist() == expected.tolist(), rows
