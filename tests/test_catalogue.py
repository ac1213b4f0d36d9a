"""The catalogue: films by id from flat arrays, as a snapshot stores them."""

from __future__ import annotations

import pandas as pd

from app.data.catalogue import Catalogue, Movie


def catalogue() -> Catalogue:
    movies = pd.DataFrame(
        {
            "title": ["Amélie", "Heat", "Babylon 5"],
            "year": pd.array([2001, 1995, None], dtype="Int64"),
            "genres": ["Comedy|Romance", "Action", ""],
        },
        index=pd.Index([4973, 6, 50], name="movie_id"),
    )
    return Catalogue.from_frame(movies)


def test_films_are_found_by_id_in_any_order() -> None:
    films = catalogue()
    assert len(films) == 3
    assert films.get(4973) == Movie(4973, "Amélie", 2001, ("Comedy", "Romance"))
    assert films.get(6) == Movie(6, "Heat", 1995, ("Action",))
    assert films.get(50) == Movie(50, "Babylon 5", None, ())
    assert films.get(7) is None and films.get(10**6) is None and films.get(0) is None


def test_many_films_are_found_at_once_as_one_at_a_time() -> None:
    films = catalogue()
    asked = [10**6, 50, 7, 4973, 50, 0, 6]
    found = films.get_many(asked)
    assert found == {i: films.get(i) for i in asked if films.get(i) is not None}
    assert sorted(found) == [6, 50, 4973]
    assert films.get_many([]) == {} and films.get_many([10**7]) == {}


def test_arrays_round_trip() -> None:
    films = catalogue()
    again = Catalogue.from_arrays(films.to_arrays())
    assert [again.at(i) for i in range(3)] == [films.at(i) for i in range(3)]
    assert all(name.startswith("catalogue.") for name in films.to_arrays())


def test_genres_are_listed_once_alphabetically() -> None:
    assert catalogue().genres == ("Action", "Comedy", "Romance")
