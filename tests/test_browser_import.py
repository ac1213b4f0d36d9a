"""Bringing a history on /rate in headless Chromium, on a phone: choose a file, see the summary
and the list; a bad paste says why beside the form; a history too long for the address keeps
working. Exports are generated from ml-latest-small (tests/exports.py), never real people's.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from tests import live, test_browser
from tests.conftest import require_real_zip
from tests.exports import imdb_export
from tests.test_browser import ARTIFACTS, VIEWPORTS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.real_data]

PHONE = VIEWPORTS["phone"]
browser = test_browser.browser
"""Debian's Chromium through Playwright, launched as tests/test_browser.py does."""
_axe = test_browser._axe
TOY_STORY = 1


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """ml-latest-small's movies, with their IMDb ids."""
    from app.data.movielens import load

    folder = tmp_path_factory.mktemp("ml")
    with zipfile.ZipFile(require_real_zip()) as archive:
        archive.extractall(folder)
    return load(folder).movies


@pytest.fixture(scope="module")
def import_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`movierec serve` on ml-latest-small, with the original algorithm only (quick to fit)."""
    folder = tmp_path_factory.mktemp("browser-import")
    with live.serving(
        require_real_zip(), folder, ALGORITHMS="original", LOG_LEVEL="WARNING"
    ) as server:
        server.wait_ready(timeout=120)
        yield server.url("")


def _export_file(movies: pd.DataFrame, folder: Path, count: int) -> tuple[Path, set[int]]:
    """An IMDb export of `count` films (Toy Story among them, at 4.5 stars) and two films
    this catalogue lacks; its path and the films it rates."""
    export = imdb_export(movies.drop(index=TOY_STORY), count=count - 1, seed=7)
    lines = export.data.decode().split("\r\n")
    extra = [
        "tt0114709,9,2024-03-01,Toy Story,Toy Story,u,Movie,8.3,81,1995,Animation,1,1995-11-22,J",
        "tt9999991,7,2024-03-01,A Series,A Series,u,TV Series,7,50,2019,Drama,1,2019-01-01,X",
        'tt9999992,6,2024-03-01,"Short, Film",x,u,Short,6,9,2020,Drama,1,2020-01-01,Y',
    ]
    path = folder / "ratings.csv"
    path.write_text("\r\n".join([lines[0], *extra, *lines[1:]]), encoding="utf-8")
    return path, {TOY_STORY, *export.expected}


def _phone(browser: Browser) -> Page:
    # bypass_csp: axe is injected as a script for the check only.
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, bypass_csp=True)
    return context.new_page()


def _fits(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "overflow"


def test_importing_a_file_on_a_phone_shows_the_summary_and_the_list(
    browser: Browser, import_server: str, movies: pd.DataFrame, tmp_path: Path
) -> None:
    path, rated = _export_file(movies, tmp_path, count=120)
    found = len(rated)
    page = _phone(browser)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    # The visitor had given Toy Story 2 stars; the file gives it 4.5.
    page.goto(f"{import_server}/rate?r={TOY_STORY}:2")
    page.set_input_files("#import-file", str(path))
    page.click("#import button[type=submit]")
    summary = page.locator(".imported-summary")
    summary.wait_for()
    assert summary.inner_text().startswith(
        f"{found} of {found + 2} films found; 2 are not in this catalogue."
    )
    assert page.locator(".imported .note").inner_text() == (
        "1 film you had rated now has the imported rating."
    )
    assert page.locator("#rated-title").inner_text() == f"Your ratings ({found})"
    assert page.locator("ol.movies li.movie").count() > 0, "recommendations from the history"
    assert "r=1:4.5" in page.url or f"{TOY_STORY}:4.5" in page.url
    unmatched = page.locator("details.unmatched")
    assert not unmatched.evaluate("d => d.open"), "the rows not found are folded away"
    _fits(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#imported-title").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "import-phone.png"))
    page.screenshot(path=str(ARTIFACTS / "import-phone-full.png"), full_page=True)
    found_axe = _axe(page, "imported")
    unmatched.locator("summary").click()
    assert unmatched.locator("tbody tr").count() == 2
    assert unmatched.locator("tbody tr").first.inner_text().startswith("3\tA Series")
    _fits(page)
    unmatched.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "import-phone-unmatched.png"))
    found_axe += _axe(page, "rows not imported")

    # A paste that is not an export: the reason beside the form, the list as it was.
    page.fill("#import-text", "Film;Stars\nHeat;5\n")
    page.click("#import button[type=submit]")
    alert = page.locator("#import-status [role=alert]")
    alert.wait_for()
    assert alert.inner_text().startswith("Row 1: The header")
    assert page.locator("#import-file").get_attribute("aria-invalid") == "true"
    assert page.locator("#rated-title").inner_text() == f"Your ratings ({found})"
    assert page.locator("#visitor-status").inner_text().startswith("Nothing was imported")
    assert page.locator("#visitor").get_attribute("aria-busy") == "false"
    _fits(page)
    alert.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "import-phone-error.png"))
    found_axe += _axe(page, "import error")
    assert found_axe == [] and problems == []


def test_a_history_too_long_for_the_address_keeps_working(
    browser: Browser, import_server: str, movies: pd.DataFrame, tmp_path: Path
) -> None:
    path, rated = _export_file(movies, tmp_path, count=1500)
    found = len(rated)
    page = _phone(browser)
    page.goto(f"{import_server}/rate")
    address = page.url
    page.set_input_files("#import-file", str(path))
    page.click("#import button[type=submit]")
    page.locator(".imported-summary").wait_for()
    assert page.locator("#rated-title").inner_text() == f"Your ratings ({found})"
    assert page.url == address, "1,500 ratings are not put in the address"
    # A star given in the search results is posted with all 1,500 and joins them.
    other = next(m for m in movies.index if int(m) not in rated and "(" not in movies.title[m])
    page.fill("#q", movies.title[other])
    star = page.locator(f"#found label[for='found-{other}-10']")
    star.wait_for()
    star.click()
    page.locator("#rated-title", has_text=f"Your ratings ({found + 1})").wait_for()
    assert "too many for this page's address" in page.locator("form.share").inner_text()
    _fits(page)
    page.screenshot(path=str(ARTIFACTS / "import-phone-long.png"))


def test_without_javascript_the_import_posts_the_page_and_keeps_the_list(
    browser: Browser, import_server: str, movies: pd.DataFrame, tmp_path: Path
) -> None:
    path, rated = _export_file(movies, tmp_path, count=40)
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    # Heat (6) rated 3 stars beforehand, kept by the form's copy of the list in <noscript>.
    heat = next(m for m in (6, 2, 3) if m not in rated)
    page.goto(f"{import_server}/rate?r={heat}:3")
    page.set_input_files("#import-file", str(path))
    page.click("#import button[type=submit]")
    page.locator(".imported-summary").wait_for()
    assert page.locator("#rated-title").inner_text() == f"Your ratings ({len(rated) + 1})"
    kept = page.locator("#rate-state input[name=r]").get_attribute("value") or ""
    assert f"{heat}:3" in kept.split(",")
    _fits(page)
    page.locator(".imported").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "import-phone-noscript.png"))
