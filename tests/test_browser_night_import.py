"""Bringing a history to a movie night in headless Chromium: on a phone (375 px), join, paste
an export, see what was found and your ratings; a bad paste says why. On a desktop, a name
and an export join in one step. axe-core must find nothing. Exports are generated from
ml-latest-small (tests/exports.py), never real people's.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
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
DESKTOP = {"width": 1280, "height": 900}
browser = test_browser.browser
"""Debian's Chromium through Playwright, launched as tests/test_browser.py does."""
_axe = test_browser._axe
UNKNOWN_ROW = "tt9999991,7,2024-03-01,A Series,A Series,u,TV Series,7,50,2019,Drama,1,2019-01-01,X"


@pytest.fixture(scope="module")
def movies(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """ml-latest-small's movies, with their IMDb ids."""
    from app.data.movielens import load

    folder = tmp_path_factory.mktemp("ml")
    with zipfile.ZipFile(require_real_zip()) as archive:
        archive.extractall(folder)
    return load(folder).movies


@pytest.fixture(scope="module")
def night_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`movierec serve` on ml-latest-small (the original algorithm only: quick to fit)."""
    folder = tmp_path_factory.mktemp("browser-night-import")
    with live.serving(
        require_real_zip(), folder, ALGORITHMS="original", LOG_LEVEL="WARNING"
    ) as server:
        server.wait_ready(timeout=120)
        yield server.url("")


def pasted(movies: pd.DataFrame, count: int, seed: int) -> tuple[str, int]:
    """An IMDb export's text of `count` films and one this catalogue lacks; the films found."""
    export = imdb_export(movies, count=count, seed=seed)
    lines = export.data.decode().split("\r\n")
    return "\r\n".join([lines[0], UNKNOWN_ROW, *lines[1:]]), len(export.expected)


def watched(page: Page, problems: list[str]) -> Page:
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    return page


def fits(page: Page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page overflows"


def shot(page: Page, name: str, selector: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(selector).first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_a_history_pasted_at_a_night_on_a_phone(
    browser: Browser, night_server: str, movies: pd.DataFrame
) -> None:
    problems: list[str] = []
    # bypass_csp: axe is injected as a script, for the check only.
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, bypass_csp=True)
    page = watched(context.new_page(), problems)
    page.goto(night_server)
    page.click(".night-start button")
    page.wait_for_url("**/nights/*")
    night = page.url
    page.fill("#name", "Ana")
    page.click("form.join button[type=submit]")
    page.locator(".you strong", has_text="Ana").wait_for()

    text, found = pasted(movies, count=30, seed=11)
    page.click("details.bring summary")
    page.fill("#import-text", text)
    page.click(".bring-import button[type=submit]")
    summary = page.locator("#night-imported .imported-summary")
    summary.wait_for()
    assert summary.inner_text().startswith(
        f"{found} of {found + 1} films found; 1 is not in this catalogue."
    )
    assert page.evaluate("document.activeElement.id") == "night-imported"
    assert page.url == night, "the answer to the import is the night's own address"
    assert page.locator("#mine-title").inner_text() == f"Your ratings ({found})"
    assert page.locator(".members li").first.inner_text() == f"Ana (you) · {found} ratings"
    unmatched = page.locator("details.unmatched")
    assert not unmatched.evaluate("d => d.open"), "the rows not found are folded away"
    fits(page, PHONE["width"])
    shot(page, "night-import-phone", "#night-imported")
    found_axe = _axe(page, "night, imported")
    unmatched.locator("summary").click()
    assert unmatched.locator("tbody tr").first.inner_text().startswith("2\tA Series")
    fits(page, PHONE["width"])
    found_axe += _axe(page, "night, rows not imported")
    # The group's list, made from the history, follows within a poll or two.
    page.locator("#night-live .group-films .movie-title").first.wait_for(timeout=5000)

    page.click("details.bring summary")  # the page after an import has it folded again
    page.fill("#import-text", "Film;Stars\nHeat;5\n")
    page.click(".bring-import button[type=submit]")
    alert = page.locator("#import-error[role=alert]")
    alert.wait_for()
    assert alert.inner_text().startswith("Row 1")
    assert page.locator("#mine-title").inner_text() == f"Your ratings ({found})"
    fits(page, PHONE["width"])
    shot(page, "night-import-phone-error", "#import-error")
    found_axe += _axe(page, "night, import refused")
    context.close()
    assert found_axe == [] and problems == []


def test_a_name_and_a_history_join_in_one_step_on_a_desktop(
    browser: Browser, night_server: str, movies: pd.DataFrame
) -> None:
    problems: list[str] = []
    context = browser.new_context(
        viewport=DESKTOP, device_scale_factor=1, bypass_csp=True, forced_colors="active"
    )
    page = watched(context.new_page(), problems)
    page.goto(night_server)
    page.click(".night-start button")
    page.wait_for_url("**/nights/*")
    text, found = pasted(movies, count=12, seed=12)
    page.fill("#name", "Ben")
    page.click("details.join-import summary")
    page.fill("#import-text", text)
    page.click("form.join button[type=submit]")
    page.locator("#night-imported .imported-summary").wait_for()
    assert page.locator(".you strong").inner_text() == "Ben"
    assert page.locator("#mine-title").inner_text() == f"Your ratings ({found})"
    page.reload()  # the night's page, as the member: the cookie came with the answer
    assert page.locator(".you strong").inner_text() == "Ben"
    assert not page.locator("#night-imported").count()
    fits(page, DESKTOP["width"])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "night-import-desktop.png"))
    page.click("details.bring summary")
    shot(page, "night-import-desktop-bring", "details.bring")
    found_axe = _axe(page, "night on a desktop, forced colours")
    context.close()
    assert found_axe == [] and problems == []
