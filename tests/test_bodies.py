"""JSON in and out (app/web/bodies.py): the plain values of an answer are asdict's."""

from __future__ import annotations

import dataclasses
import json

from app.engine.answers import Because, MovieResult, Recommendations
from app.recommender import Neighbour
from app.web.bodies import plain


def _answer() -> Recommendations:
    reasons = (
        Because("movie", 1, "Toy Story (1995)", 0.5, 4.0),
        Because("user", 7, None, 0.25, 5.0),
    )
    films = tuple(
        MovieResult(
            m,
            f"Film {m}",
            1999 if m % 2 else None,
            ("Comedy", "Drama"),
            0.9 - m / 100,
            3 if m % 3 else None,
            3.5,
            10 + m,
            reasons,
            "https://www.imdb.com/title/tt0114709/",
        )
        for m in range(1, 11)
    )
    return Recommendations(
        5,
        10,
        5,
        "ease",
        "EASE",
        "scored",
        "weight",
        films,
        (Neighbour(3, 0.4), Neighbour(9, 0.1)),
        "a note",
    )


def test_an_answer_as_plain_values_is_what_asdict_gives() -> None:
    answer = _answer()
    assert json.dumps(plain(answer)) == json.dumps(dataclasses.asdict(answer))


def test_plain_values_share_nothing_mutable_with_the_answer() -> None:
    answer = _answer()
    body = plain(answer)
    body["movies"][0]["genres"].append("Horror")
    body["movies"][0]["reasons"].clear()
    assert answer.movies[0].genres == ("Comedy", "Drama")
    assert len(answer.movies[0].reasons) == 2
