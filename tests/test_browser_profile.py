"""A saved profile in headless Chromium at 375 px: open its private link, rate there, forget it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import live
from tests.test_browser import ARTIFACTS, VIEWPORTS, _axe, browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with tests/test_browser.py

RATED = "ul[aria-label='Films you rated'] li"


@pytest.fixture
def tiny_server(tiny_zip: Path, tmp_path: Path) -> Iterator[str]:
    """`movierec serve` on a free port of 127.0.0.1, serving the tiny release."""
    with live.serving(tiny_zip, tmp_path, LOG_LEVEL="WARNING") as server:
        if not live.wait_for(lambda: live.get(server.url("/readyz")).status == 200, 60):
            pytest.fail(f"not ready after 60 s:\n{server.output()[-2000:]}")
        yield server.url("")


def _search(page: Page, words: str, film: int) -> None:
    """Type `words` in the title search and wait for `film`'s stars among the results."""
    page.fill("#q", words)
    page.locator(f"#found label[for='found-{film}-1']").wait_for()
    page.locator("#found [role=status]", has_text="matching").wait_for()


def test_a_saved_profile_is_rated_on_its_page_and_forgotten(
    browser: Browser, tiny_server: str
) -> None:
    context = browser.new_context(viewport=VIEWPORTS["phone"], bypass_csp=True)
    page = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{tiny_server}/rate?r=10:4,20:3.5")
    page.get_by_role("button", name="Save this profile").click()
    page.wait_for_url("**/me/**")
    private_link = page.url
    context.close()

    # The private link, opened afresh: its ratings, and stars to change them in place.
    context = browser.new_context(viewport=VIEWPORTS["phone"], bypass_csp=True)
    page = context.new_page()
    page.goto(private_link)
    assert page.locator(RATED).count() == 2
    assert page.locator("#mine-10-8").is_checked()
    page.evaluate("window.notReloaded = true")
    _search(page, "Heat", 30)
    page.locator("#found label[for='found-30-10']").click()
    page.locator("#rated-title", has_text="Your ratings (3)").wait_for()
    assert page.evaluate("window.notReloaded === true"), "the list changed in place"
    assert page.url == private_link
    assert page.locator("#mine-30-10").is_checked()
    assert "3 ratings saved" in page.locator("#visitor-status").inner_text()
    # A new search shows the stars stored, though the page never sends its ratings.
    _search(page, "Toy Story", 10)
    page.wait_for_function("document.getElementById('found-10-8').checked")
    page.screenshot(path=str(ARTIFACTS / "profile-375.png"), full_page=True)
    found = _axe(page, "profile")

    # Kept on the server: a reload shows the rating, and Remove takes one away.
    page.reload()
    assert page.locator(RATED).count() == 3
    assert page.locator("#mine-30-10").is_checked()
    page.get_by_role("button", name="Remove your rating of The American President").click()
    page.locator("#rated-title", has_text="Your ratings (2)").wait_for()
    page.reload()
    assert page.locator(RATED).count() == 2

    page.get_by_label("Yes, delete this profile and its ratings now").check()
    page.get_by_role("button", name="Forget me").click()
    page.get_by_role("heading", name="Your profile is gone").wait_for()
    page.screenshot(path=str(ARTIFACTS / "profile-gone-375.png"), full_page=True)
    found += _axe(page, "gone")
    response = page.goto(private_link)
    assert response is not None and response.status == 404
    found += _axe(page, "404")
    context.close()
    assert found == []


def test_a_saved_profile_on_a_wide_screen(browser: Browser, tiny_server: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{tiny_server}/rate?r=10:4,20:3.5,30:2")
    page.get_by_role("button", name="Save this profile").click()
    page.wait_for_url("**/me/**")
    page.select_option("#genre", "Drama")
    page.wait_for_url("**?genre=Drama")
    assert page.locator(RATED).count() == 3
    page.screenshot(path=str(ARTIFACTS / "profile-1280.png"), full_page=True)
    found = _axe(page, "profile wide")
    context.close()
    assert found == []
