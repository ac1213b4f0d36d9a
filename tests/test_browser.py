"""A real user in headless Chromium: type, submit, see the list change in place, see an error."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

from tests import live
from tests.conftest import IN_CI, require_real_zip

if TYPE_CHECKING:  # only for the annotations: Playwright is imported when the browser starts
    from playwright.sync_api import Browser, BrowserContext, Page, Route, ViewportSize

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORTS: dict[str, ViewportSize] = {
    "phone": {"width": 375, "height": 812},
    "desktop": {"width": 1440, "height": 900},
}


def _every_algorithm_ready(url: str) -> bool:
    """True once every algorithm serves, so that the default is the default."""
    status, listed = live.get_json(url)
    algorithms = listed.get("algorithms", []) if status == 200 else []
    return bool(algorithms) and all(a["availability"] == "ready" for a in algorithms)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`movierec serve` on a free port, serving the real ml-latest-small from a local file."""
    source = require_real_zip()
    folder = tmp_path_factory.mktemp("browser")
    with live.serving(source, folder, ALGORITHMS="all", LOG_LEVEL="WARNING") as server:
        ready = live.wait_for(lambda: _every_algorithm_ready(server.url("/api/algorithms")), 120)
        if not ready:
            pytest.fail(f"not every algorithm was ready after 120 s:\n{server.output()[-2000:]}")
        yield server.url("")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        if IN_CI:
            pytest.fail("CI must install Debian's chromium package")
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_recommendations_appear_in_place(browser: Browser, live_server: str, device: str) -> None:
    context = browser.new_context(viewport=VIEWPORTS[device], device_scale_factor=1)
    page = context.new_page()
    problems: list[str] = []
    # 4xx answers are expected here; the browser logs each as a failed resource load.
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    page.goto(live_server)
    page.wait_for_selector("#user_id", timeout=60_000)  # the loading card turns into the form
    page.evaluate("window.__marker = 'same page'")

    page.fill("#user_id", "42")
    page.fill("#n", "6")
    page.click("button[type=submit]")
    page.wait_for_selector("ol.movies li.movie")
    # The default algorithm is item-based: each film names films user 42 rated.
    assert page.locator("ol.movies li.movie").count() == 6
    assert (
        page.locator("ol.movies li.movie .reasons li")
        .first.inner_text()
        .startswith("User 42 rated")
    )
    assert page.locator("table.neighbours").count() == 0
    assert page.evaluate("window.__marker") == "same page", "the page must not reload"
    assert page.url.endswith("/?user_id=42&n=6&k=5&algorithm=ease")
    first_title = page.locator(".movie-title").first.inner_text()
    assert first_title

    width = VIEWPORTS[device]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "page overflows"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"results-{device}.png"), full_page=True)

    page.select_option("#algorithm", "original")
    page.click("button[type=submit]")
    page.locator("table.neighbours tbody tr").first.wait_for()
    assert page.locator("table.neighbours tbody tr").count() == 5
    reason = page.locator("ol.movies li.movie .reasons li").first.inner_text()
    assert reason.startswith("User ") and "rated it" in reason
    assert page.url.endswith("/?user_id=42&n=6&k=5&algorithm=original")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "page overflows"
    page.screenshot(path=str(ARTIFACTS / f"original-{device}.png"), full_page=True)

    page.fill("#user_id", "not a user")
    page.click("button[type=submit]")
    alert = page.locator("#results [role=alert]")
    alert.wait_for()
    assert alert.inner_text() == "Please enter a valid user ID."
    assert page.evaluate("window.__marker") == "same page"
    assert page.url.endswith("/?user_id=42&n=6&k=5&algorithm=original"), (
        "a failed query is not pushed to history"
    )

    page.fill("#user_id", "99999")
    page.click("button[type=submit]")
    alert.filter(has_text="Valid user IDs are 1 to 610.").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "page overflows"
    page.screenshot(path=str(ARTIFACTS / f"error-{device}.png"), full_page=True)

    page.goto(f"{live_server}/?user_id=7&n=3&k=5")
    assert page.locator("ol.movies li.movie").count() == 3

    page.click(".nav >> text=About")
    page.wait_for_selector(".about-table table", state="attached")  # folded below the charts
    splits = page.locator("section[aria-labelledby=eval-title] .about-table")
    assert splits.count() == 2  # the random and the temporal split
    assert page.locator("#visitor-evaluation table.visitor-table").count() == 2
    # Folded, so its text content: a closed <details> renders no text.
    assert (page.locator("tr.is-default").first.text_content() or "").strip().startswith("EASE")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "page overflows"
    page.screenshot(path=str(ARTIFACTS / f"about-{device}.png"), full_page=True)

    assert not problems, f"console errors (CSP violations?): {problems}"
    context.close()


FILMS_TO_RATE = [
    ("toy story 1995", "Toy Story", "4.5"),
    ("matrix, the", "The Matrix", "5.0"),
    ("AMELIE", "Amelie (Fabuleux destin d'Amélie Poulain, Le)", "3.5"),
]


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_a_visitor_rates_three_films_and_the_list_follows(
    browser: Browser, live_server: str, device: str
) -> None:
    context = browser.new_context(viewport=VIEWPORTS[device], device_scale_factor=1)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    page.goto(f"{live_server}/rate")
    assert page.locator("#found li.film").count() >= 10  # well-known films to start from
    page.evaluate("window.__marker = 'same page'")
    previous = ""
    for count, (query, title, stars) in enumerate(FILMS_TO_RATE, start=1):
        page.fill("#q", query)
        # The search results, not the starter list (which has some of these films too).
        page.locator("#found .list-caption", has_text=f"matching “{query}”").wait_for()
        row = (
            page.locator("#found li.film")
            .filter(has=page.locator(".film-title", has_text=title))
            .first
        )
        row.wait_for()
        row.locator(f"label[title='{stars} stars']").click()
        page.locator("#rated-title", has_text=f"({count})").wait_for()
        listing = page.locator("#visitor ol.movies").inner_text()
        assert listing and listing != previous, "the recommendations change after each rating"
        previous = listing
        assert page.evaluate("window.__marker") == "same page", "no navigation"
    assert "r=" in page.url and page.url.count(":") >= 4  # three ratings in the address
    # With three ratings the visitor policy answers (weighted user kNN): reasons name users.
    assert page.locator("#algorithm").input_value() == ""
    assert "Similar users" in page.locator("#visitor .lede").first.inner_text()
    assert page.locator("#visitor .reasons li").first.inner_text().startswith("User ")
    width = VIEWPORTS[device]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "page overflows"
    assert not _cut_off_in_films(page), "a film's stars or reasons are cut off"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"rate-{device}.png"), full_page=True)

    page.reload()
    page.locator("#rated-title", has_text="(3)").wait_for()
    rated = page.locator("ul[aria-label='Films you rated']")
    assert rated.locator("input[type=radio]:checked").count() == 3
    assert page.locator("#visitor ol.movies").inner_text() == previous
    assert "Toy Story" in rated.inner_text() and "The Matrix" in rated.inner_text()

    # Keyboard: arrow keys move along a star control and the rating follows.
    toy = rated.locator("li.film").filter(has_text="Toy Story")
    toy.locator("input[type=radio]:checked").focus()
    page.keyboard.press("ArrowRight")  # 4.5 -> 5.0
    page.locator("ul[aria-label='Films you rated'] li.film", has_text="Toy Story").locator(
        ".film-genres", has_text="You gave it 5.0"
    ).wait_for()
    assert "10:5" not in page.url and "1:5" in page.url  # Toy Story is movie 1
    assert not problems, f"console errors: {problems}"
    context.close()


# What a demanding user found (issue 13): each test below failed on the pages before the fix.


def _new_page(browser: Browser, device: str = "desktop") -> tuple[BrowserContext, Page]:
    context = browser.new_context(viewport=VIEWPORTS[device], device_scale_factor=1)
    return context, context.new_page()


def _rated_count(page: Page) -> int:
    """How many films the page says the visitor rated, from the "Your ratings (n)" heading."""
    heading = page.locator("#rated-title").inner_text()
    return int(heading.split("(")[1].rstrip(")")) if "(" in heading else 0


def _cut_off_in_films(page: Page) -> list[str]:
    """What sticks out of a film's box in a list, which the list's clipped corners hide.

    The page's own width cannot show it: the list clips, so nothing scrolls. (Before: on a
    375 px phone each recommended film's fifth star and the end of each reason were cut
    off, and so was a rated film's Remove button.)
    """
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('li.movie, li.film')].flatMap((film) => {
             const edge = film.getBoundingClientRect().right + 0.5;
             return [...film.querySelectorAll('*')]
               .filter((part) => part.getBoundingClientRect().right > edge)
               .map((part) => part.tagName + '.' + part.className);
           })"""
    )
    return found


def _wait_idle(page: Page) -> None:
    """Until no htmx request runs and none is waiting to be sent."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, [aria-busy=true]')",
        timeout=10_000,
    )
    page.wait_for_timeout(100)


@pytest.mark.parametrize("order", ["latency", "reversed"])
def test_overlapping_star_clicks_keep_every_rating(
    browser: Browser, live_server: str, order: str
) -> None:
    """Two star clicks 200 ms apart while answers are slow, or come back in reverse order."""
    context, page = _new_page(browser)
    held: list[Route] = []
    seen: list[str] = []

    def slow(route: Route) -> None:
        # "reversed": hold the first update until the test lets it go, after the second.
        seen.append(route.request.url)
        if order == "reversed" and len(seen) == 1:
            held.append(route)
        else:
            route.continue_()

    page.goto(f"{live_server}/rate")
    if order == "latency":
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")
        latency = {"offline": False, "latency": 300, "downloadThroughput": -1}
        cdp.send("Network.emulateNetworkConditions", {**latency, "uploadThroughput": -1})
    page.route(lambda url: urlsplit(url).path == "/rate", slow)
    rows = page.locator("#found li.film")
    first = rows.nth(0).locator("input[type=radio]").first.get_attribute("value") or ""
    second = rows.nth(1).locator("input[type=radio]").first.get_attribute("value") or ""
    # Count the updates handed to htmx (each star saves after a short delay).
    page.evaluate(
        """() => { const ajax = window.htmx.ajax; window.__updates = 0;
                   window.htmx.ajax = function (...args) { window.__updates += 1;
                                                           return ajax.apply(this, args); }; }"""
    )
    rows.nth(0).locator("label[title='4.0 stars']").click()
    page.wait_for_timeout(200)
    rows.nth(1).locator("label[title='3.0 stars']").click()
    # Both ratings are on their way (sent, or queued behind a held answer) before one returns.
    page.wait_for_function("() => window.__updates === 2", timeout=5_000)
    if held:
        held.pop().continue_()
    page.locator("#rated-title", has_text="(2)").wait_for(timeout=5_000)
    _wait_idle(page)
    assert _rated_count(page) == 2
    query = parse_qs(urlsplit(page.url).query)
    kept = dict(pair.split(":") for pair in query["r"][0].split(","))
    assert kept == {first.split(":")[0]: "4", second.split(":")[0]: "3"}
    context.close()


def test_focus_stays_with_the_user_after_in_place_updates(
    browser: Browser, live_server: str
) -> None:
    context, page = _new_page(browser)
    focused_in = "(sel) => !!document.activeElement.closest(sel)"
    # Remove: focus moves to the next film's Remove button, not to <body>.
    page.goto(f"{live_server}/rate?r=1:4,260:4.5,1196:4,2571:5")
    page.locator("#visitor ol.movies").wait_for()
    page.get_by_role("button", name="Remove your rating of Toy Story").focus()
    page.keyboard.press("Enter")
    page.locator("#rated-title", has_text="(3)").wait_for()
    _wait_idle(page)
    assert page.evaluate("document.activeElement.tagName") != "BODY"
    assert page.evaluate(focused_in, "ul[aria-label='Films you rated']")
    page.keyboard.press("Tab")
    assert not page.evaluate(focused_in, "footer"), "the next Tab must not jump to the footer"

    # A "Seen it?" row: focus follows the film to its place in the visitor's ratings.
    seen = page.locator("#visitor ol.movies li.movie").first
    title = seen.locator(".movie-title").inner_text().split(" (")[0]
    seen.locator(".rate-this input[type=radio]").first.focus()
    page.keyboard.press("Space")
    page.locator("#rated-title", has_text="(4)").wait_for()
    _wait_idle(page)
    assert page.evaluate(focused_in, "ul[aria-label='Films you rated'] li.film")
    active_row = "document.activeElement.closest('li.film').querySelector('.film-title').innerText"
    assert page.evaluate(active_row).startswith(title)

    # "Get recommendations": focus moves to the results on purpose, next to the form.
    page.goto(live_server)
    page.fill("#user_id", "42")
    page.locator("#search button[type=submit]").focus()
    page.keyboard.press("Enter")
    page.locator("ol.movies li.movie").first.wait_for()
    _wait_idle(page)
    assert page.evaluate("document.activeElement.id") == "recs-title"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(focused_in, "#search"), "one step back is the form"
    context.close()


def _search(page: Page, user: str, algorithm: str | None = None) -> None:
    page.fill("#user_id", user)
    if algorithm:
        page.select_option("#algorithm", algorithm)
    page.click("#search button[type=submit]")
    page.locator("#recs-title", has_text=f"for user {user}").wait_for()


def test_back_and_forward_bring_back_the_form_that_made_the_results(
    browser: Browser, live_server: str
) -> None:
    context, page = _new_page(browser)
    page.goto(live_server)
    _search(page, "1", "original")
    _search(page, "2", "itemknn")
    _search(page, "3")
    for user, algorithm in (("2", "itemknn"), ("1", "original")):
        page.go_back()
        page.locator("#recs-title", has_text=f"for user {user}").wait_for()
        _wait_idle(page)
        assert page.input_value("#user_id") == user
        assert page.input_value("#algorithm") == algorithm
        assert f"user_id={user}&" in page.url
    page.go_forward()
    page.locator("#recs-title", has_text="for user 2").wait_for()
    _wait_idle(page)
    assert page.input_value("#user_id") == "2"
    assert page.input_value("#algorithm") == "itemknn"
    page.click("#search button[type=submit]")
    _wait_idle(page)
    assert page.locator("#results [role=alert]").count() == 0
    assert "for user 2" in page.locator("#recs-title").inner_text()
    context.close()


def test_a_second_search_while_one_runs_wins(browser: Browser, live_server: str) -> None:
    context, page = _new_page(browser)
    held: list[Route] = []
    done: list[str] = []  # requests that ended: answered, or dropped by htmx
    page.on("requestfinished", lambda request: done.append(request.url))
    page.on("requestfailed", lambda request: done.append(request.url))
    page.goto(live_server)
    page.route("**/?user_id=8*", lambda route: held.append(route))
    page.fill("#user_id", "8")
    page.press("#user_id", "Enter")
    page.wait_for_timeout(300)
    assert held, "the first search is on its way"
    page.fill("#user_id", "9")
    page.press("#user_id", "Enter")
    page.locator("#recs-title", has_text="for user 9").wait_for(timeout=5_000)
    for route in held:
        route.continue_()
    # Until the first search's answer has come back late (or htmx has dropped it).
    first = [route.request.url for route in held]
    deadline = time.monotonic() + 5
    while not set(first) <= set(done) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert set(first) <= set(done), "the first search's request never ended"
    _wait_idle(page)
    assert page.input_value("#user_id") == "9"
    assert "for user 9" in page.locator("#recs-title").inner_text()
    assert "user_id=9&" in page.url
    context.close()


def test_star_arrow_keys_go_the_way_they_point_and_save_once(
    browser: Browser, live_server: str
) -> None:
    context, page = _new_page(browser)
    page.goto(f"{live_server}/rate")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if urlsplit(r.url).path == "/rate" else None)
    before = page.evaluate("history.length")
    page.focus("#q")
    page.keyboard.press("Tab")
    start = page.evaluate("document.activeElement.value")
    film = start.split(":")[0]
    assert start == f"{film}:0.5", "Tab into an unrated film lands on the lowest star"
    for _ in range(5):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(80)
    assert page.evaluate("document.activeElement.value") == f"{film}:3.0"
    page.locator("#rated-title", has_text="(1)").wait_for()
    _wait_idle(page)
    assert len(sent) == 1, f"one request for five key presses, not {sent}"
    assert page.evaluate("history.length") == before + 1, "one history entry"
    assert f"r={film}:3" in page.url
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(f"() => location.href.includes('r={film}:2.5')")
    context.close()


AXE = ROOT / "static" / "vendor" / "axe.min.js"


def _axe(page: Page, state: str) -> list[str]:
    """axe-core's violations on the page as it is now, one line each, named by `state`."""
    if not AXE.exists():
        pytest.fail("static/vendor/axe.min.js is missing: run `make static`")
    page.add_script_tag(path=str(AXE))
    found: list[str] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ["violations"]})).violations
             .map(v => v.id + " (" + v.nodes.map(n => n.target.join(" ")).join(", ") + ")")"""
    )
    return [f"{state}: {violation}" for violation in found]


@pytest.mark.parametrize("scheme", ["dark", "light"])
@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_axe_finds_nothing_in_any_state(
    browser: Browser, live_server: str, device: str, scheme: str
) -> None:
    # The CSP allows no inline script, and add_script_tag injects one: for axe only.
    context = browser.new_context(
        viewport=VIEWPORTS[device], device_scale_factor=1, bypass_csp=True, color_scheme=scheme
    )
    page = context.new_page()
    found: list[str] = []
    page.goto(live_server)
    found += _axe(page, "/")
    _search(page, "42", "original")
    _wait_idle(page)
    found += _axe(page, "results")
    page.fill("#user_id", "x")
    page.click("#search button[type=submit]")
    page.locator("#results [role=alert]").wait_for()
    found += _axe(page, "error in place")
    page.goto(f"{live_server}/?user_id=99999")
    found += _axe(page, "error page")
    page.goto(f"{live_server}/rate")
    found += _axe(page, "/rate")
    page.fill("#q", "matrix")
    page.locator("#found .list-caption", has_text="matching").wait_for()
    found += _axe(page, "search")
    page.goto(f"{live_server}/rate?r=1:4,260:4.5,1196:4,2571:5")
    found += _axe(page, "/rate with ratings")
    page.fill("#from_user", "nobody")
    page.click(".from-user button")
    page.locator("#visitor [role=alert]").wait_for()
    _wait_idle(page)
    found += _axe(page, "/rate error in place")
    page.goto(f"{live_server}/about")
    found += _axe(page, "/about")
    page.goto(f"{live_server}/no-such-page")
    found += _axe(page, "404")
    assert not found
    context.close()


def test_stars_show_their_state_in_forced_colours(browser: Browser, live_server: str) -> None:
    context, page = _new_page(browser)
    page.emulate_media(forced_colors="active")
    page.goto(f"{live_server}/rate?r=1:3")
    row = page.locator("ul[aria-label='Films you rated'] .star-row").first
    drawn = row.evaluate(
        """row => Array.from(row.querySelectorAll("label")).map(label => {
             const style = getComputedStyle(label, "::before");
             return style.content + " " + style.color;
           })"""
    )
    filled, empty = set(drawn[:6]), set(drawn[6:])
    assert len(filled) == 1 and len(empty) == 1 and filled != empty, drawn
    context.close()


def test_buttons_keep_an_outline_in_forced_colours(browser: Browser, live_server: str) -> None:
    # Their fill is taken away there: without a border a button reads as plain text.
    context, page = _new_page(browser)
    page.emulate_media(forced_colors="active")
    page.goto(f"{live_server}/")
    button = page.get_by_role("button", name="Get recommendations")
    width = button.evaluate("button => parseFloat(getComputedStyle(button).borderTopWidth)")
    assert width >= 1, width
    context.close()
