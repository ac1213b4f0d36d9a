"""Each film links to its IMDb and TMDB pages when the release has links.csv (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest
from selectolax.lexbor import LexborHTMLParser

from app import create_app
from app.config import Settings
from app.data.movielens import load
from tests.conftest import make_zip, wait_until_settled
from tests.tiny import TINY_MOVIES, TINY_RATINGS

# Toy Story's real ids; film 20 has an IMDb id only; the others none.
LINKS = "movieId,imdbId,tmdbId\n10,0114709,862\n20,0112346,\n"


def release(tmp_path: Path, links: str | None) -> Path:
    """The tiny release extracted into a folder, with `links` as links.csv if given."""
    folder = tmp_path / "ml-tiny"
    folder.mkdir()
    (folder / "ratings.csv").write_text(TINY_RATINGS)
    (folder / "movies.csv").write_text(TINY_MOVIES)
    if links is not None:
        (folder / "links.csv").write_text(links)
    return folder


def test_links_join_the_films_by_id(tmp_path: Path) -> None:
    movies = load(release(tmp_path, LINKS)).movies
    assert (movies.loc[10, "imdb_id"], movies.loc[10, "tmdb_id"]) == (114709, 862)
    assert movies.loc[20, "imdb_id"] == 112346 and movies["tmdb_id"].isna()[20]
    assert movies["imdb_id"].isna()[30]


@pytest.mark.parametrize(
    "links", [None, "nothing,like,it\n1,2,3\n", "movieId,imdbId,tmdbId\nx,,\n"]
)
def test_a_release_without_usable_links_loads_all_the_same(
    tmp_path: Path, links: str | None
) -> None:
    movies = load(release(tmp_path, links)).movies
    assert len(movies) == 6 and movies["imdb_id"].isna().all()


async def test_recommendations_link_each_film_to_its_pages(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "ml-linked.zip"
    source.write_bytes(
        make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES, "links.csv": LINKS})
    )
    app = create_app(settings.replace(source=str(source)))
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        client = test_app.test_client()
        body = await (await client.get("/api/users/4/recommendations?n=3&k=3")).get_json()
        films = {movie["movie_id"]: movie for movie in body["recommendations"]}
        assert films[10]["imdb_url"] == "https://www.imdb.com/title/tt0114709/"
        assert films[10]["tmdb_url"] == "https://www.themoviedb.org/movie/862"
        page = await client.get("/?user_id=4&n=3&k=3", headers={"HX-Request": "true"})
        tree = LexborHTMLParser(await page.get_data(as_text=True))
        hrefs = [a.attributes.get("href") for a in tree.css(".film-links a")]
        assert "https://www.imdb.com/title/tt0114709/" in hrefs
        assert "https://www.themoviedb.org/movie/862" in hrefs
