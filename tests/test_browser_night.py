"""One movie night in headless Chromium: three phones join, rate, see one list, decide.

Three phone-sized contexts (375 px), each its own browser with its own cookie, on the real
ml-latest-small. Every change must reach every member's page within 2 s (each page polls
the night's version every second); axe-core must find nothing on the night's pages.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests import live
from tests.conftest import require_real_zip
from tests.test_browser import ARTIFACTS, VIEWPORTS, _axe
from tests.test_browser import browser as browser  # the same Chromium, as a fixture here

if TYPE_CHECKING:  # only for the annotations: Playwright is imported when the browser starts
    from playwright.sync_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.browser

SPREAD = 2.0
"""Seconds within which every member's page must show a change (issue 22)."""
LIST = "#night-live .group-films .movie-title"


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`movierec serve` on ml-latest-small, with its nights in SQLite in its data folder."""
    source = require_real_zip()
    folder = tmp_path_factory.mktemp("night")
    with live.serving(source, folder, LOG_LEVEL="WARNING") as server:
        if not live.wait_for(lambda: live.get(server.url("/readyz")).status == 200, 120):
            pytest.fail(f"not ready after 120 s:\n{server.output()[-2000:]}")
        yield server.url("")


def phone(browser: Browser, problems: list[str], **options: object) -> tuple[BrowserContext, Page]:
    """A phone-sized browser of its own; its script errors and CSP reports go to `problems`."""
    context = browser.new_context(viewport=VIEWPORTS["phone"], device_scale_factor=1, **options)
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    return context, page


def join(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.fill("#name", name)
    page.click("form.join button[type=submit]")
    page.locator(".you strong", has_text=name).wait_for()


def rate(page: Page, movie_id: str, step: int) -> None:
    """Give a film of the starter grid `step` half stars; wait for "Your ratings" to show it."""
    page.click(f"label[for=found-{movie_id}-{step}]")
    page.locator(f"#night-mine input[id=mine-{movie_id}-{step}]:checked").wait_for()


def version(page: Page) -> int:
    return int(page.locator("#night-live").get_attribute("data-version") or 0)


def server_version(page: Page, url: str) -> int:
    """The night's version now, as the server has it (a poll from a page that has none)."""
    answer = page.request.get(f"{url}/live?v=none", headers={"HX-Request": "true"})
    found = re.search(r'data-version="(\d+)"', answer.text())
    assert found, answer.text()[:500]
    return int(found[1])


def shoot(page: Page, name: str) -> None:
    """Screenshots a person would see: the top of the page, and the group's list in view."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / f"{name}-top.png"))
    page.locator("#night-live").evaluate("element => element.scrollIntoView()")
    page.screenshot(path=str(ARTIFACTS / f"{name}-list.png"))
    if page.locator("#night-rate").count():
        page.locator("#night-rate").evaluate("element => element.scrollIntoView()")
        page.screenshot(path=str(ARTIFACTS / f"{name}-rate.png"))


def titles(page: Page) -> list[str]:
    return page.locator(LIST).all_inner_texts()


def everyone_sees(pages: list[Page], check: object, started: float) -> float:
    """Seconds from `started` until `check(page)` holds on every page (fails after SPREAD)."""
    deadline = started + SPREAD + 1.0
    while time.monotonic() < deadline:
        if all(check(page) for page in pages):  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"not on every page within {SPREAD} s: {[titles(p) for p in pages]}")


def test_three_phones_one_night(browser: Browser, live_server: str) -> None:
    problems: list[str] = []
    # Ana's context (dark theme) lets axe in: it injects a script, and the CSP allows none
    # inline. Ben's keeps the CSP and the light theme; Chloé's forces colours.
    contexts = [
        phone(browser, problems, bypass_csp=True, color_scheme="dark"),
        phone(browser, problems),
        phone(browser, problems, forced_colors="active"),
    ]
    ana, ben, chloe = pages = [page for _, page in contexts]
    found: list[str] = []

    ana.goto(live_server)
    ana.click(".night-start button")
    ana.wait_for_url("**/nights/*")
    url = ana.url
    assert ana.locator("#share-url").input_value() == url
    assert ana.locator(".qr svg[role=img]").count() == 1
    found += _axe(ana, "night before joining")

    for page, name in zip(pages, ("Ana", "Ben", "Chloé <3"), strict=True):
        join(page, url, name)
    # Ben's page hears of Chloé by its next poll.
    ben.locator(".members li:nth-child(3)", has_text="Chloé <3").wait_for(timeout=SPREAD * 1000)

    starters = ana.locator("#found .stars input[value$=':5.0']").evaluate_all(
        "inputs => inputs.map(i => i.value.split(':')[0])"
    )
    assert len(starters) >= 6
    rate(ana, starters[0], 10)
    rate(ana, starters[1], 9)
    rate(ben, starters[2], 8)
    rate(ben, starters[3], 10)
    rate(chloe, starters[4], 3)
    changed = time.monotonic()
    rate(chloe, starters[5], 10)
    target = server_version(ana, url)
    waited = everyone_sees(pages, lambda p: version(p) >= target, changed)
    lists = [titles(page) for page in pages]
    assert lists[0] and lists[0] == lists[1] == lists[2], lists
    matches = ana.locator("#night-live .member-matches").first.inner_text()
    assert "Ana" in matches and "Ben" in matches and "Chloé <3" in matches
    rated = set(ana.locator("#night-mine .film-title").all_inner_texts())
    assert not rated & set(lists[0])
    found += _axe(ana, "night with the group's list")
    for page, who in zip(pages, ("ana-dark", "ben", "chloe-forced-colours"), strict=True):
        shoot(page, f"night-{who}-phone")

    first = lists[0][0]
    started = time.monotonic()
    ana.locator("#night-live .group-films li").first.locator("button[name=aside]").click()
    aside = everyone_sees(pages, lambda p: first not in titles(p), started)

    status = "#night-status"
    assert ben.locator(status).inner_text().startswith("The group's list changed; first ")
    ben.evaluate(f"document.querySelector('{status}').textContent = ''")
    quiet_until = time.monotonic() + 1.2  # a poll or more with nothing new: nothing said
    while time.monotonic() < quiet_until:
        assert ben.locator(status).inner_text() == "", "announced without a change"
        time.sleep(0.1)

    second = titles(ben)[0]
    started = time.monotonic()
    # By keyboard: Enter on "Pick this", and focus lands on "Undo the pick".
    ben.locator("#night-live .group-films li").first.locator("button[name=pick]").focus()
    ben.keyboard.press("Enter")
    picked = everyone_sees(
        pages,
        lambda p: (
            p.locator("#picked-title").count() == 1
            and p.locator("#picked-title").inner_text().startswith(second.split(" (")[0])
        ),
        started,
    )
    ben.wait_for_function("() => document.activeElement.id === 'undo-pick'", timeout=2000)
    assert ben.locator(status).inner_text() == f"Tonight's film: {second.split(' (')[0]}."
    found += _axe(ana, "night with the pick")
    for page, who in zip(pages, ("ana-dark", "ben", "chloe-forced-colours"), strict=True):
        shoot(page, f"night-{who}-picked-phone")

    desktop = browser.new_context(
        viewport=VIEWPORTS["desktop"], device_scale_factor=1, bypass_csp=True
    )
    wide = desktop.new_page()
    wide.goto(url)
    found += _axe(wide, "night on a desktop, not joined")
    shoot(wide, "night-desktop")
    wide.goto(f"{live_server}/nights/no-such-night")
    found += _axe(wide, "unknown night")
    desktop.close()

    print(f"change -> every page: {waited:.2f} s; set aside: {aside:.2f} s; pick: {picked:.2f} s")
    widths = [page.evaluate("document.documentElement.scrollWidth") for page in pages]
    for context, _ in contexts:
        context.close()
    assert waited < SPREAD and aside < SPREAD and picked < SPREAD
    assert max(widths) <= VIEWPORTS["phone"]["width"], f"a page overflows: {widths}"
    assert not problems, problems
    assert not found, "\n".join(found)
