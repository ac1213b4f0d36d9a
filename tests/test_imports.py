"""Importing a rating history: each format, each awkward file, matching, the API and /rate.

Files are generated here (tests/exports.py writes whole exports from ml-latest-small; the
small ones below are written by hand around tests/tiny.py's films), never real people's.
"""

from __future__ import annotations

import codecs
import io
import logging
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from quart import Quart

from app import create_app
from app.config import Settings
from app.data.catalogue import Catalogue
from app.data.imports import (
    AMBIGUOUS,
    MAX_IMPORT_BYTES,
    NOT_FOUND,
    REPEATED,
    UNRATED,
    InvalidImport,
    Matched,
    index_of,
    match,
    read_import,
)
from app.engine import ImportResult, Unmatched, join_ratings
from tests.conftest import (
    make_zip,
    one,
    parse,
    require_real_zip,
    text_of,
    texts,
    wait_until_settled,
)
from tests.exports import imdb_export, letterboxd_export, movielens_export
from tests.tiny import MOVIES, TINY_MOVIES, TINY_RATINGS

if TYPE_CHECKING:
    from quart.typing import TestClientProtocol

# tests/tiny.py's films, with IMDb ids as links.csv would give them: 10 -> tt0000110, ...
LINKS = "movieId,imdbId,tmdbId\n" + "".join(f"{m},{m + 100:07d},{m}\n" for m, _, _ in MOVIES)
# Titles as MovieLens files them, for matching by name: articles at the end, other
# languages' titles with the English one in parentheses, and two films of one name and year.
NAMED = [
    (101, "Matrix, The", 1999),
    (102, "Cité des enfants perdus, La (City of Lost Children, The)", 1995),
    (103, "Leben der Anderen, Das (Lives of Others, The)", 2006),
    (104, "Postino, Il (Postman, The)", 1994),
    (105, "Laberinto del fauno, El (Pan's Labyrinth)", 2006),
    (106, "Misérables, Les", 1998),
    (107, "Emma", 1996),
    (108, "Emma", 1996),
    (109, "Amelie (Fabuleux destin d'Amélie Poulain, Le)", 2001),
    (110, "Fast & Furious", 2009),
    (111, "Star Wars: Episode IV - A New Hope", 1977),
    (112, "Chien andalou, Un", 1929),
    (113, "Mépris, Le (Contempt)", 1963),
]


def catalogue_of(rows: list[tuple[int, str, int | None]]) -> Catalogue:
    """A catalogue of (movie_id, title, year), each film's IMDb id its movie id + 100."""
    frame = pd.DataFrame(
        {
            "title": [title for _, title, _ in rows],
            "year": pd.array([year for _, _, year in rows], dtype="Int64"),
            "genres": ["Drama"] * len(rows),
            "imdb_id": [movie_id + 100 for movie_id, _, _ in rows],
        },
        index=pd.Index([movie_id for movie_id, _, _ in rows], name="movie_id"),
    )
    return Catalogue.from_frame(frame)


TINY_CATALOGUE = catalogue_of(
    [(10, "Toy Story", 1995), (20, "American President, The", 1995), (30, "Heat", 1995)]
)
CATALOGUE = catalogue_of(NAMED)


def imported(text: str | bytes, catalogue: Catalogue = TINY_CATALOGUE) -> Matched:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return match(read_import(data), catalogue)


def refusal(text: str | bytes) -> InvalidImport:
    with pytest.raises(InvalidImport) as caught:
        imported(text)
    return caught.value


# ---- each format -------------------------------------------------------------------------


def test_imdb_ratings_become_half_stars_matched_through_imdb_ids() -> None:
    found = imported(
        "Const,Your Rating,Date Rated,Title,Year\n"
        "tt0000110,9,2024-01-01,Toy Story,1995\n"
        "tt0000120,2,2024-01-01,The American President,1995\n"
        "tt0000130,1,2024-01-01,Heat,1995\n"
        "tt9999999,10,2024-01-01,Not Here,2020\n"
    )
    assert found.format == "imdb" and found.rows == 4
    assert found.ratings == ((10, 4.5), (20, 1.0), (30, 0.5))
    assert [(u.row, u.title, u.kind) for u in found.unmatched] == [(5, "Not Here", NOT_FOUND)]


def test_letterboxd_ratings_and_watched_files() -> None:
    ratings = imported(
        "Date,Name,Year,Letterboxd URI,Rating\n"
        "2024-01-01,Toy Story,1995,https://boxd.it/1,4.5\n"
        "2024-01-01,The American President,1995,https://boxd.it/2,3\n"
    )
    assert ratings.format == "letterboxd" and ratings.ratings == ((10, 4.5), (20, 3.0))
    watched = imported("Date,Name,Year,Letterboxd URI\n2024-01-01,Heat,1995,https://boxd.it/3\n")
    assert watched.format == "letterboxd-watched" and watched.ratings == ()
    assert [u.kind for u in watched.unmatched] == [UNRATED]


def test_movielens_exports_and_a_plain_movie_id_rating_file() -> None:
    dataset = imported("userId,movieId,rating,timestamp\n611,10,4.5,1\n611,30,2,2\n")
    assert dataset.format == "movielens" and dataset.ratings == ((10, 4.5), (30, 2.0))
    site = imported(
        "movie_id,imdb_id,tmdb_id,rating,average_rating,title\n"
        "10,0000110,10,5,3.9,Toy Story (1995)\n"
        "999,0000130,30,3.5,3.1,Heat (1995)\n"
    )
    # A MovieLens id this release lacks is found through the IMDb id beside it.
    assert site.format == "movielens" and site.ratings == ((10, 5.0), (30, 3.5))
    plain = imported("movieId,rating\n20,1.5\n")
    assert plain.format == "plain" and plain.ratings == ((20, 1.5),)


# ---- how files are written -----------------------------------------------------------------

PLAIN_ROWS = [(10, "4.5"), (20, "3")]
EXPECTED = ((10, 4.5), (20, 3.0))


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + b"movieId,rating\n10,4.5\n20,3\n",
        b"movieId,rating\r\n10,4.5\r\n20,3\r\n",
        b"movieId;rating\n10;4,5\n20;3\n",
        b"movieId\trating\n10\t4.5\n20\t3\n",
        "movieId\trating\n10\t4.5\n20\t3\n".encode("utf-16"),
        b"\n\nmovieId,rating\n\n10,4.5\n20,3\n\n",
    ],
    ids=["bom", "crlf", "semicolons-decimal-comma", "tabs", "utf-16", "blank-lines"],
)
def test_spreadsheet_and_locale_variants_read_alike(data: bytes) -> None:
    assert imported(data).ratings == EXPECTED


def test_quoted_commas_and_newlines_in_titles_keep_rows_and_their_lines() -> None:
    found = imported(
        'Date,Name,Year,Letterboxd URI,Rating\n2024-01-01,"Toy Story, the\nfirst one",1995,u,4\n'
        "2024-01-01,Nowhere,1990,u,3\n"
    )
    assert found.rows == 2
    # The second row starts on line 4: the first one's title takes two lines.
    assert [(u.row, u.title) for u in found.unmatched] == [
        (2, "Toy Story, the\nfirst one"),
        (4, "Nowhere"),
    ]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_latin_1_and_windows_1252_titles(encoding: str) -> None:
    catalogue = catalogue_of([(1, "Mépris, Le", 1963), (2, "Café’s Night", 2000)])
    text = "Date,Name,Year,Letterboxd URI,Rating\n2024,Le Mépris,1963,u,5\n"
    if encoding == "cp1252":
        text += "2024,Café’s Night,2000,u,2\n"
    found = imported(text.encode(encoding), catalogue)
    assert found.ratings[0] == (1, 5.0) and not found.unmatched


# ---- bad input: a 4xx naming row and column, never a guess ----------------------------------


def _xlsx() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "a PNG image"),
        (b"\xff\xd8\xff\xe0" + bytes(64), "a JPEG image"),
        (_xlsx(), "a zip archive"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(64), "an Excel workbook"),
        (b"movieId,rating\x00\x01\x02", "binary data"),
        (b"", "empty"),
        (b" \r\n\n", "empty"),
        (b",,,\n , ,\r\n", "empty"),
    ],
)
def test_files_that_are_not_csv_are_named_for_what_they_are(data: bytes, says: str) -> None:
    error = refusal(data)
    assert says in error.message and error.row is None


def test_an_unknown_header_names_row_1_and_the_formats_known() -> None:
    error = refusal("Film,Stars\nToy Story,5\n")
    assert error.row == 1 and '"Film", "Stars"' in error.message and "Letterboxd" in error.message
    assert refusal("movieId,rating\n").row == 1


def test_a_file_over_the_limit_is_refused_as_too_large() -> None:
    error = refusal(b"movieId,rating\n" + b"10,4\n" * (MAX_IMPORT_BYTES // 5))
    assert error.too_large and "2 MiB" in error.message


@pytest.mark.parametrize(
    ("text", "row", "column", "says"),
    [
        ("Const,Your Rating\ntt0000110,11\n", 2, "Your Rating", "from 1 to 10"),
        ("Const,Your Rating\ntt0000110,7.5\n", 2, "Your Rating", "whole numbers"),
        ("Const,Your Rating\n110,7\n", 2, "Const", "IMDb title id"),
        ("Date,Name,Year,Letterboxd URI,Rating\n2024,Heat,1995,u,4.2\n", 2, "Rating", "0.5"),
        ("Date,Name,Year,Letterboxd URI,Rating\n2024,Heat,1995,u,great\n", 2, "Rating", "number"),
        ("Date,Name,Year,Letterboxd URI,Rating\n2024,Heat,soon,u,4\n", 2, "Year", "year"),
        ("movieId,rating\n10,4\n20,0\n", 3, "rating", "from 0.5 to 5"),
        ("movieId,rating\n10,4\n20,NaN\n", 3, "rating", "not a number"),
        ("movieId,rating\nten,4\n", 2, "movieId", "movie id"),
        ('movieId,rating\n10,"4,5"\n', 2, "rating", "not a number"),
        ("userId,movieId,rating\n1,10,4\n2,20,4\n", 3, "userId", "more than one user"),
        ('movieId,rating\n10,4\n"20,4\n', 3, None, "not readable as CSV"),
        ("Date,Name,Year,Letterboxd URI,Rating\n2024,Matrix, The,1999,u,4\n", 2, None, "quotes"),
    ],
)
def test_bad_values_name_their_row_and_column(
    text: str, row: int, column: str | None, says: str
) -> None:
    error = refusal(text)
    assert (error.row, error.column) == (row, column) and says in error.message
    assert error.message.startswith(f"Row {row}")


def test_a_huge_title_is_cut_and_matched_in_no_time() -> None:
    title = "x" + " " * 100_000 + "y"
    found = imported(f'Date,Name,Year,Letterboxd URI,Rating\n2024,"{title}",1999,u,4\n')
    assert [(u.kind, len(u.title or "")) for u in found.unmatched] == [(NOT_FOUND, 300)]


def test_an_error_quotes_one_short_cell_and_nothing_else_of_the_file() -> None:
    secret = "my private diary entry " * 5
    error = refusal(f"Date,Name,Year,Letterboxd URI,Rating\n2024,{secret},1995,u,{secret}\n")
    assert secret not in error.message and len(error.message) < 200


def test_the_same_film_twice_keeps_the_later_row_and_reports_the_earlier() -> None:
    found = imported("movieId,rating\n10,2\n20,3\n10,5\n")
    assert found.ratings == ((20, 3.0), (10, 5.0)) and found.rows == 3
    assert [(u.row, u.kind) for u in found.unmatched] == [(2, REPEATED)]
    assert "row 4" in found.unmatched[0].reason


# ---- matching titles to the catalogue ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "year", "movie_id"),
    [
        ("The Matrix", 1999, 101),
        ("Matrix, The", 1999, 101),
        ("the matrix", 2000, 101),  # a year off
        ("The City of Lost Children", 1995, 102),
        ("La Cité des enfants perdus", 1995, 102),
        ("La Cite des Enfants Perdus", 1995, 102),  # no accents
        ("Das Leben der Anderen", 2006, 103),
        ("The Lives of Others", 2007, 103),
        ("Il Postino", 1994, 104),
        ("The Postman", 1995, 104),
        ("El laberinto del fauno", 2006, 105),
        ("Pan’s Labyrinth", 2006, 105),  # a curly apostrophe
        ("Les Misérables", 1998, 106),
        ("Amélie", 2001, 109),
        ("Le Fabuleux Destin d'Amélie Poulain", 2001, 109),
        ("Fast and Furious", 2009, 110),
        ("Star Wars: Episode IV – A New Hope", 1977, 111),
        ("Un chien andalou", 1929, 112),
        ("Contempt", 1963, 113),
    ],
)
def test_titles_match_whatever_the_spelling(name: str, year: int, movie_id: int) -> None:
    found = imported(f'Date,Name,Year,Letterboxd URI,Rating\n2024,"{name}",{year},u,4\n', CATALOGUE)
    assert found.ratings == ((movie_id, 4.0),), found.unmatched


@pytest.mark.parametrize(
    ("name", "year", "kind"),
    [
        ("Emma", 1996, AMBIGUOUS),  # two films of that name that year: reported, not guessed
        ("The Matrix", 2003, NOT_FOUND),  # four years off is another film
        ("Matrix Reloaded", 2003, NOT_FOUND),
    ],
)
def test_no_guess_where_the_catalogue_does_not_say(name: str, year: int, kind: str) -> None:
    found = imported(f"Date,Name,Year,Letterboxd URI,Rating\n2024,{name},{year},u,4\n", CATALOGUE)
    assert found.ratings == () and [u.kind for u in found.unmatched] == [kind]
    if kind == AMBIGUOUS:
        assert found.unmatched[0].reason.count("Emma (1996)") == 2


def test_the_title_index_is_built_once_per_catalogue() -> None:
    assert index_of(CATALOGUE) is index_of(CATALOGUE)
    assert index_of(TINY_CATALOGUE) is not index_of(CATALOGUE)


# ---- what the engine makes of it ----------------------------------------------------------


def test_the_summary_counts_what_was_found_and_why_the_rest_was_not() -> None:
    missing = tuple(Unmatched(i, "x", None, NOT_FOUND, "Not in this catalogue.") for i in range(33))
    ratings = tuple((i, 4.0) for i in range(812))
    result = ImportResult("imdb", 845, ratings, missing)
    assert result.summary() == "812 of 845 films found; 33 are not in this catalogue"
    mixed = (*missing[:2], Unmatched(40, "Emma", 1996, AMBIGUOUS, "..."))
    mixed += (Unmatched(41, "y", None, REPEATED, "..."),)
    assert ImportResult("letterboxd", 10, ratings[:6], mixed).summary() == (
        "6 of 10 films found; 2 are not in this catalogue, 1 could be more than one film "
        "and 1 repeats a film rated later"
    )


def test_an_import_joins_the_ratings_kept_and_wins_where_both_rate_a_film() -> None:
    joined = join_ratings([(10, 2.0), (20, 3.0)], [(20, 5.0), (30, 1.0), (10, 2.0)])
    assert dict(joined.pairs) == {10: 2.0, 20: 5.0, 30: 1.0}
    assert joined.replaced == (20,)


# ---- the whole catalogue: match rates on generated exports (README, "Bring your history") ----


@pytest.fixture(scope="module")
def real_movies(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Catalogue]:
    """ml-latest-small's movies (with links) and its catalogue."""
    from app.data.movielens import load

    folder = tmp_path_factory.mktemp("ml")
    with zipfile.ZipFile(require_real_zip()) as archive:
        archive.extractall(folder)
    movies = load(folder).movies
    return movies, Catalogue.from_frame(movies)


@pytest.mark.real_data
def test_generated_exports_of_the_whole_catalogue_match(
    real_movies: tuple[pd.DataFrame, Catalogue],
) -> None:
    movies, catalogue = real_movies
    for export, least in (
        (imdb_export(movies), 1.0),
        (movielens_export(movies), 1.0),
        (letterboxd_export(movies), 0.97),
    ):
        found = dict(match(read_import(export.data), catalogue).ratings)
        right = sum(found.get(movie) == rating for movie, rating in export.expected.items())
        assert right >= least * len(export.expected), (right, len(export.expected))
        # A miss is reported rather than guessed: wrong films are the rare case of a year one
        # off that lands on another film of that title (README, "Bring your history").
        wrong = [movie for movie in found if found[movie] != export.expected.get(movie)]
        assert len(wrong) <= len(export.expected) // 1000, wrong


# ---- the API ------------------------------------------------------------------------------


@pytest.fixture
def linked_app(settings: Settings, tmp_path: Path) -> Quart:
    """The app on the tiny release with links.csv, and an access log."""
    source = tmp_path / "ml-tiny.zip"
    source.write_bytes(
        make_zip({"ratings.csv": TINY_RATINGS, "movies.csv": TINY_MOVIES, "links.csv": LINKS})
    )
    return create_app(settings.replace(source=str(source), access_log=True))


@pytest.fixture
async def api(linked_app: Quart) -> AsyncIterator[TestClientProtocol]:
    async with linked_app.test_app() as test_app:
        await wait_until_settled(linked_app)
        yield test_app.test_client()


IMDB_FILE = (
    "Const,Your Rating,Title,Year\n"
    "tt0000110,9,Toy Story,1995\ntt0000150,8,Babylon 5,1994\ntt0000999,3,Lost,2001\n"
)


async def test_post_csv_and_get_ratings_ready_for_recommendations(api: TestClientProtocol) -> None:
    response = await api.post(
        "/api/imports", data=IMDB_FILE.encode(), headers={"Content-Type": "text/csv"}
    )
    body = await response.get_json()
    assert response.status_code == 200, body
    assert body == {
        "format": "imdb",
        "rows": 3,
        "matched": 2,
        "ratings": [{"movie_id": 10, "rating": 4.5}, {"movie_id": 50, "rating": 4.0}],
        "unmatched": [
            {"row": 4, "title": "Lost", "year": 2001, "reason": "Not in this catalogue."}
        ],
    }
    recommended = await api.post("/api/recommendations", json={"ratings": body["ratings"]})
    assert recommended.status_code == 200


async def test_a_multipart_form_field_file_works_the_same(api: TestClientProtocol) -> None:
    from werkzeug.datastructures import FileStorage

    upload = FileStorage(io.BytesIO(IMDB_FILE.encode()), "ratings.csv", content_type="text/csv")
    response = await api.post("/api/imports", files={"file": upload})
    body = await response.get_json()
    assert response.status_code == 200 and body["matched"] == 2, body


@pytest.mark.parametrize(
    ("data", "content_type", "status", "row", "column"),
    [
        (b"Const,Your Rating\ntt0000110,12\n", "text/csv", 400, 2, "Your Rating"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "text/csv", 400, None, None),
        (b"", "text/csv", 400, None, None),
        (b"Film,Stars\n", "text/csv", 400, 1, None),
        (b'{"ratings": []}', "application/json", 415, None, None),
        (b"movieId,rating\n" + b"10,4\n" * (MAX_IMPORT_BYTES // 5), "text/csv", 413, None, None),
        (b"movieId,rating\n" + b"10,4\n" * MAX_IMPORT_BYTES, "text/csv", 413, None, None),
    ],
    ids=["rating", "image", "empty", "header", "json", "over-2-mib", "far-over"],
)
async def test_bad_uploads_get_a_4xx_naming_where(
    api: TestClientProtocol,
    data: bytes,
    content_type: str,
    status: int,
    row: int | None,
    column: str | None,
) -> None:
    response = await api.post("/api/imports", data=data, headers={"Content-Type": content_type})
    body = await response.get_json()
    assert response.status_code == status, body
    assert body["error"].get("row") == row and body["error"].get("column") == column


async def test_a_form_without_the_file_field_is_told_its_name(api: TestClientProtocol) -> None:
    from werkzeug.datastructures import FileStorage

    upload = FileStorage(io.BytesIO(IMDB_FILE.encode()), "ratings.csv", content_type="text/csv")
    response = await api.post("/api/imports", files={"other": upload})
    body = await response.get_json()
    assert response.status_code == 400 and body["error"]["field"] == "file", body


async def test_uploads_are_not_logged(
    api: TestClientProtocol, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "Zyzzyva Private Title"
    good = f"Date,Name,Year,Letterboxd URI,Rating\n2024,{marker},1995,u,4\n"
    bad = f"Date,Name,Year,Letterboxd URI,Rating\n2024,{marker},1995,u,{marker}\n"
    for text in (good, bad):
        response = await api.post(
            "/api/imports", data=text.encode(), headers={"Content-Type": "text/csv"}
        )
        assert response.status_code in (200, 400)
    assert any("/api/imports" in r.getMessage() for r in caplog.records)  # the access log ran
    assert marker not in caplog.text


def test_the_openapi_document_names_every_import_format() -> None:
    from app.engine import IMPORT_FORMATS
    from app.web import openapi

    schema = openapi.template()["components"]["schemas"]["ImportResult"]
    assert tuple(schema["properties"]["format"]["enum"]) == IMPORT_FORMATS


# ---- the import on /rate --------------------------------------------------------------------


def _upload(text: str) -> dict[str, object]:
    from werkzeug.datastructures import FileStorage

    return {"file": FileStorage(io.BytesIO(text.encode()), "ratings.csv", content_type="text/csv")}


async def test_an_import_on_rate_joins_the_list_and_says_what_it_found(
    api: TestClientProtocol,
) -> None:
    # The visitor had rated Toy Story 2 stars and Heat 4; the file rates Toy Story 4.5.
    response = await api.post(
        "/rate", form={"import": "1", "r": "10:2,30:4"}, files=_upload(IMDB_FILE)
    )
    page = parse(await response.get_data(as_text=True))
    assert response.status_code == 200
    summary = text_of(one(page, ".imported-summary"))
    assert summary.startswith("2 of 3 films found; 1 is not in this catalogue.")
    assert text_of(one(page, "#imported-title")) == "Imported from IMDb"
    assert "1 film you had rated now has the imported rating." in texts(page, ".imported .note")
    assert one(page, "details.unmatched").attributes.get("open") is None  # folded away
    assert texts(page, "details.unmatched tbody td") == [
        "4",
        "Lost",
        "2001",
        "Not in this catalogue.",
    ]
    assert one(page, "#rate-state input[name=r]").attributes["value"] == "10:4.5,30:4,50:4"
    assert len(page.css("ul[aria-label='Films you rated'] li")) == 3


async def test_pasted_text_imports_in_place_with_a_new_address(api: TestClientProtocol) -> None:
    response = await api.post(
        "/rate",
        form={"import": "1", "r": "20:3", "paste": "movieId,rating\r\n30,5\r\n"},
        headers={"HX-Request": "true"},
    )
    fragment = parse(await response.get_data(as_text=True))
    assert response.status_code == 200 and response.headers["HX-Push-Url"] == "/rate?r=20:3,30:5"
    assert text_of(one(fragment, "#imported-title")) == "Imported from a movieId,rating file"
    # A failed import's message beside the form is cleared.
    assert one(fragment, "#import-status").attributes["hx-swap-oob"] == "true"


@pytest.mark.parametrize(
    ("form", "files", "says"),
    [
        ({"import": "1", "r": "10:5"}, {}, "Choose your export's file"),
        ({"import": "1", "r": "10:5", "paste": "Film,Stars\nHeat,5\n"}, {}, "Row 1"),
        ({"import": "1", "r": "10:5"}, "Const,Your Rating\ntt0000110,12\n", 'column "Your Rating"'),
    ],
    ids=["nothing", "header", "rating"],
)
async def test_a_failed_import_says_why_beside_the_form_and_leaves_the_list(
    api: TestClientProtocol, form: dict[str, str], files: str | dict[str, object], says: str
) -> None:
    def uploads() -> dict[str, object]:
        return _upload(files) if isinstance(files, str) else files

    response = await api.post("/rate", form=form, files=uploads(), headers={"HX-Request": "true"})
    fragment = parse(await response.get_data(as_text=True))
    assert response.status_code == 400
    assert response.headers["HX-Retarget"] == "#import-status"
    assert response.headers["HX-Push-Url"] == "false"
    alert = one(fragment, "[role=alert]")
    assert says in text_of(alert) and alert.attributes["data-field"] == "import-file"
    assert not fragment.css("#rate-state")  # the list, and its ratings, are not replaced
    # Without JavaScript the page comes back whole, with the ratings it had.
    page = parse(await (await api.post("/rate", form=form, files=uploads())).get_data(as_text=True))
    assert one(page, "#rate-state input[name=r]").attributes["value"] == "10:5"
    assert says in text_of(one(page, "[role=alert]"))


@pytest.fixture
async def real_client(settings: Settings) -> AsyncIterator[TestClientProtocol]:
    """The app on ml-latest-small (the original algorithm only), ready."""
    app = create_app(settings.replace(source=str(require_real_zip())))
    async with app.test_app() as test_app:
        await wait_until_settled(app, timeout=120)
        yield test_app.test_client()


@pytest.mark.real_data
async def test_a_history_too_long_for_the_address_is_posted_and_keeps_working(
    real_client: TestClientProtocol, real_movies: tuple[pd.DataFrame, Catalogue]
) -> None:
    from app.engine import MAX_RATINGS

    movies, _ = real_movies
    export = imdb_export(movies, count=1500)
    response = await real_client.post(
        "/rate",
        form={"import": "1"},
        files=_upload(export.data.decode()),
        headers={"HX-Request": "true"},
    )
    fragment = parse(await response.get_data(as_text=True))
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == "false"  # too long for an address
    kept = one(fragment, "#rate-state input[name=r]").attributes["value"] or ""
    assert (
        len(kept.split(",")) == 1500 and one(fragment, "#rate-state").attributes["method"] == "post"
    )
    assert len(fragment.css("ul[aria-label='Films you rated'] li")) == 300
    assert "all of them count" in " ".join(texts(fragment, ".note"))
    assert fragment.css(".recommendations li, ol li"), "recommendations from the whole history"
    # A star, as static/js/pages.js posts it for a long list: the rating joins the 1,500.
    unrated = next(m for m in movies.index if int(m) not in export.expected)
    starred = await real_client.post(
        "/rate", form={"r": kept, "set": f"{unrated}:5"}, headers={"HX-Request": "true"}
    )
    again = parse(await starred.get_data(as_text=True))
    assert starred.status_code == 200
    assert (
        len((one(again, "#rate-state input[name=r]").attributes["value"] or "").split(",")) == 1501
    )
    # The search shows the stars given, and the export gives every rating.
    assert (
        await real_client.post("/rate/search", form={"q": "matrix", "r": kept})
    ).status_code == 200
    exported = await (await real_client.post("/rate/export", form={"r": kept})).get_json()
    assert len(exported["ratings"]) == 1500 <= MAX_RATINGS


# ---- `movierec evaluate --split visitor`: a whole history imported ------------------------


@pytest.mark.real_data
def test_a_history_imported_scores_within_5_percent_of_the_same_users_known(
    real_movies: tuple[pd.DataFrame, Catalogue], tmp_path: Path
) -> None:
    from app.data.movielens import load
    from app.evaluation.imported import imported_case
    from app.evaluation.visitor import draw_cases, evaluate_visitors, visitor_holdout

    movies, catalogue = real_movies
    with zipfile.ZipFile(require_real_zip()) as archive:
        archive.extractall(tmp_path)
    ratings = load(tmp_path).ratings
    result = evaluate_visitors(ratings, ["itemknn"], lengths=(5,), movies=movies)
    assert result.imported is not None
    imported, known = result.imported.rows[0].cells
    assert (imported.algorithm, known.algorithm) == ("itemknn imported", "itemknn known")
    assert imported.users == known.users > 100
    assert abs(imported.ndcg - known.ndcg) <= 0.05 * known.ndcg, (imported, known)
    # Every film of every history goes through the IMDb export and comes back.
    cases = draw_cases(visitor_holdout(ratings), (), 42)
    for case in cases[:20]:
        back = imported_case(case, catalogue)
        assert dict(zip(back.movie_ids, back.ratings, strict=True)) == dict(
            zip(case.movie_ids, case.ratings, strict=True)
        )


@pytest.mark.parametrize("extra", [0, 200_000], ids=["just-over", "past-the-form-limit"])
async def test_a_file_over_2_mib_on_rate_is_413_beside_the_form(
    api: TestClientProtocol, extra: int
) -> None:
    text = "movieId,rating\n" + "10,4\n" * ((MAX_IMPORT_BYTES + extra) // 5 + 1)
    response = await api.post(
        "/rate",
        form={"import": "1", "r": "10:5"},
        files=_upload(text),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 413
    assert response.headers["HX-Retarget"] == "#import-status"
    alert = one(parse(await response.get_data(as_text=True)), "[role=alert]")
    assert "over 2 MiB" in text_of(alert)


async def test_an_upload_is_read_in_memory_never_spooled_to_a_file(
    api: TestClientProtocol, monkeypatch: pytest.MonkeyPatch
) -> None:
    import werkzeug.formparser

    spooled: list[object] = []

    def no_temporary_files(*args: object, **kwargs: object) -> object:
        spooled.append(args)
        raise AssertionError("an upload went to a temporary file")

    # Werkzeug's default puts uploads over 500 KiB in a SpooledTemporaryFile.
    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", no_temporary_files)
    big = "movieId,rating\n" + "10,4\n" * 200_000  # 1 MB
    response = await api.post("/api/imports", files=_upload(big))
    assert response.status_code == 200 and not spooled
