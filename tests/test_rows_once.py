"""A film's row is rendered once per film and snapshot, and the list reads exactly as before.

tests/reference/_recommendations_per_request.html is the results list as it was when every
part of every row was rendered per request by the template (then an include, now a macro);
the list made from kept rows and app/web/rows.py's per-request parts must equal it character
for character, for user-based, item-based and popularity reasons, known users and visitors,
but for whitespace: a run of it is one space to a browser, and the template's blank lines
are not written any more. Where the template had none, the list must have none either.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import jinja2
import pytest
from quart import Quart

from app import create_app
from app.config import Settings
from app.engine import MovieResult, Recommendations
from app.web.rows import FilmRows
from tests.conftest import one, parse, require_real_zip, text_of, wait_until_settled

REFERENCE = Path(__file__).parent / "reference" / "_recommendations_per_request.html"
LIST = "partials/_recommendations.html"
USERS = (1, 42, 77, 250, 414, 610)
ALGORITHMS = ("original", "ease", "popularity")


def spaced(html: str) -> str:
    """`html` as a browser reads its whitespace: each run of it one space."""
    return re.sub(r"\s+", " ", html).strip()


def per_request(templates: jinja2.Environment) -> jinja2.Environment:
    """The app's templates with the list as it was before rows were kept."""
    loader = templates.loader
    assert loader is not None
    return templates.overlay(
        loader=jinja2.ChoiceLoader([jinja2.DictLoader({LIST: REFERENCE.read_text()}), loader])
    )


@pytest.mark.real_data
async def test_the_list_from_kept_rows_is_the_list_rendered_whole(settings: Settings) -> None:
    app = create_app(
        settings.replace(source=str(require_real_zip()), algorithms=ALGORITHMS, result_cache=0)
    )
    async with app.test_app():
        await wait_until_settled(app, timeout=120)
        service = app.extensions["service"]
        await service.settled()
        templates: jinja2.Environment = app.extensions["templates"]
        old = per_request(templates)
        compared = 0
        async with app.test_request_context("/rate"):
            for algorithm in ALGORITHMS:
                for user_id in USERS:
                    results = (await service.recommend(user_id, 10, 5, algorithm)).value
                    for visitor in (False, True):  # /rate's list adds stars to each row
                        context = {"results": results, "visitor": visitor, "form": {}}
                        # Twice: the first renders the rows, the second takes them as kept.
                        for _ in range(2):
                            made = templates.get_template(LIST).module.recommendations(
                                results, visitor, {}
                            )
                            assert spaced(made) == spaced(old.get_template(LIST).render(context))
                        compared += 1
                    assert len(parse(made).css("ol.movies li.movie")) == 10
        assert compared == 2 * len(ALGORITHMS) * len(USERS)


def film(**changed: object) -> MovieResult:
    """A recommended film as an answer carries it."""
    made = MovieResult(
        movie_id=1,
        title="Toy Story & Friends",
        year=1995,
        genres=("Animation", "Children"),
        score=4.2,
        neighbours_rated=None,
        avg_rating=3.92,
        ratings_count=215,
        reasons=(),
        imdb_url="https://www.imdb.com/title/tt0114709/",
        tmdb_url=None,
    )
    return dataclasses.replace(made, **changed)


@pytest.fixture
def templates(app: Quart) -> jinja2.Environment:
    environment: jinja2.Environment = app.extensions["templates"]
    return environment


def test_a_row_is_rendered_once_and_what_changes_with_the_snapshot_makes_a_new_one(
    templates: jinja2.Environment,
) -> None:
    rows = FilmRows(templates)
    first = rows(film())
    assert rows(film(score=1.0, reasons=())) is first, "the score is not part of the row"
    assert len(rows) == 1
    # A new snapshot: more ratings move the average, a corrected title; each is a new row.
    newer = rows(film(avg_rating=4.16, ratings_count=220))
    assert text_of(one(parse(str(newer.average)), "dd")) == "★ 4.2 (220 ratings)"
    assert text_of(one(parse(str(first.average)), "dd")) == "★ 3.9 (215 ratings)"
    renamed = rows(film(title="Toy Story"))
    assert text_of(one(parse(str(renamed.main)), "h3")) == "Toy Story (1995)"
    assert text_of(one(parse(str(first.main)), "h3")) == "Toy Story & Friends (1995)"
    assert len(rows) == 3


def test_kept_rows_are_bounded(templates: jinja2.Environment) -> None:
    rows = FilmRows(templates, max_films=3)
    for movie_id in range(1, 11):
        made = rows(film(movie_id=movie_id, title=f"Film {movie_id}"))
        # A cell outside a table would be dropped by the parser.
        table = parse(f"<table><tr>{made.title_cell}</tr></table>")
        assert text_of(one(table, "th")) == f"Film {movie_id}"
        assert len(rows) <= 3


def test_a_row_escapes_what_it_shows(templates: jinja2.Environment) -> None:
    made = FilmRows(templates)(film(title="<script>alert(1)</script>", genres=("<b>",)))
    tree = parse(str(made.main))
    assert not tree.css("script") and not tree.css("ul.genres b")
    assert text_of(one(tree, "h3")) == "<script>alert(1)</script> (1995)"


def test_the_results_fragment_is_one_list_whatever_the_rows_kept(
    templates: jinja2.Environment,
) -> None:
    answer = Recommendations(
        user_id=7,
        n=2,
        k=5,
        algorithm="ease",
        label="EASE",
        method="Scored.",
        reason_measure="weight",
        movies=(film(), film(movie_id=2, title="Heat", year=None, score=2.1, avg_rating=None)),
        neighbours=(),
    )
    html = str(templates.get_template(LIST).module.recommendations(answer))
    assert spaced(html) == spaced(per_request(templates).get_template(LIST).render(results=answer))
    rows = parse(html).css("ol.movies li.movie")
    assert [text_of(one(row, "h3")) for row in rows] == ["Toy Story & Friends (1995)", "Heat"]
    assert [text_of(row.css("dl.movie-stats dd")[-1]) for row in rows] == [
        "★ 3.9 (215 ratings)",
        "—",
    ]
