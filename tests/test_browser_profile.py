"""A saved profile in headless Chromium at 375 px: open its private link, see it, forget it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests import live
from tests.test_browser import ARTIFACTS, VIEWPORTS, _axe, browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser

pytestmark = pytest.mark.browser
__all__ = ["browser"]  # the module-scoped Chromium fixture, shared with tests/test_browser.py


@pytest.fixture
def tiny_server(tiny_zip: Path, tmp_path: Path) -> Iterator[str]:
    """`movierec serve` on a free port of 127.0.0.1, serving the tiny release."""
    with live.serving(tiny_zip, tmp_path, LOG_LEVEL="WARNING") as server:
        if not live.wait_for(lambda: live.get(server.url("/readyz")).status == 200, 60):
            pytest.fail(f"not ready after 60 s:\n{server.output()[-2000:]}")
        yield server.url("")


def test_a_saved_profile_opens_lists_and_is_forgotten(browser: Browser, tiny_server: str) -> None:
    context = browser.new_context(viewport=VIEWPORTS["phone"], bypass_csp=True)
    page = context.new_page()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{tiny_server}/rate?r=10:4,20:3.5")
    page.get_by_role("button", name="Save this profile").click()
    page.wait_for_url("**/me/**")
    private_link = page.url
    items = page.locator("ul.profile-ratings li")
    assert items.count() == 2
    page.screenshot(path=str(ARTIFACTS / "profile-375.png"), full_page=True)
    found = _axe(page, "profile")
    context.close()

    # The private link, opened afresh, still holds the list.
    context = browser.new_context(viewport=VIEWPORTS["phone"], bypass_csp=True)
    page = context.new_page()
    page.goto(private_link)
    assert page.locator("ul.profile-ratings li").count() == 2
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
