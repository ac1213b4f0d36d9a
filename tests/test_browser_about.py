"""/about in headless Chromium: the charts lead, fit a phone and a desktop, keep their marks in
forced colours, and axe-core finds nothing. Screenshots go to tests/artifacts/about-charts-*."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests import live
from tests.conftest import require_real_zip
from tests.evaluation_fixture import report_with_groups
from tests.test_browser import ARTIFACTS, _axe, browser

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

__all__ = ["browser"]  # the Chromium fixture, shared with test_browser.py

WIDTHS = {"phone": 375, "desktop": 1280}
CHARTS = 5
"""The random and temporal splits, new visitors, group strategies, group sizes."""


@pytest.fixture(scope="module")
def about_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/about of a server whose own evaluation has a group section (made up, of the real shape)."""
    source = require_real_zip()
    folder = tmp_path_factory.mktemp("about")
    evaluation = folder / "data" / "evaluation"
    evaluation.mkdir(parents=True)
    (evaluation / "latest.json").write_text(json.dumps(report_with_groups()))
    ARTIFACTS.mkdir(exist_ok=True)
    with live.serving(source, folder, ALGORITHMS="ease", LOG_LEVEL="WARNING") as server:
        if not live.wait_for(lambda: _ease_ready(server.url("/api/algorithms")), 120):
            pytest.fail(f"EASE not ready after 120 s:\n{server.output()[-2000:]}")
        yield server.url("/about")


def _ease_ready(url: str) -> bool:
    """True once EASE serves, so that it is the default, as in production."""
    status, listed = live.get_json(url)
    algorithms = listed.get("algorithms", []) if status == 200 else []
    return any(a["name"] == "ease" and a["availability"] == "ready" for a in algorithms)


def _open(browser: Browser, url: str, width: int, **options: object) -> Page:
    context = browser.new_context(
        viewport={"width": width, "height": 900}, device_scale_factor=1, **options
    )
    page = context.new_page()
    page.goto(url)
    return page


@pytest.mark.parametrize("device", list(WIDTHS))
def test_the_charts_lead_and_fit_the_width(browser: Browser, about_url: str, device: str) -> None:
    width = WIDTHS[device]
    page = _open(browser, about_url, width)
    charts = page.locator("main svg.chart[role=img]")
    assert charts.count() == CHARTS
    # The charts come before the algorithms' descriptions and every table.
    first_chart = charts.first.bounding_box()
    first_table = page.locator("main details.chart-tables").first.bounding_box()
    assert first_chart and first_table and first_chart["y"] < first_table["y"]
    for index in range(CHARTS):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
    # Text drawn at 12 units stays readable: at least 11 px on the phone.
    label = page.locator("svg.chart .chart-label").first.bounding_box()
    assert label is not None and label["height"] >= 11, label
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "page overflows"
    # The tables are folded below; opening one shows it.
    assert not page.locator("table.group-table").is_visible()
    page.locator("#group-evaluation summary").click()
    assert page.locator("table.group-table").is_visible()
    page.locator("#group-evaluation summary").click()
    page.screenshot(path=str(ARTIFACTS / f"about-charts-{device}.png"), full_page=True)
    page.context.close()


def test_forced_colours_keep_the_bars_and_the_default(browser: Browser, about_url: str) -> None:
    page = _open(browser, about_url, WIDTHS["phone"], forced_colors="active")
    chart = page.locator("svg.chart").first
    fills = chart.evaluate(
        """svg => ({
             plain: getComputedStyle(svg.querySelector(".chart-row:not(.is-default) rect")).fill,
             chosen: getComputedStyle(svg.querySelector(".chart-row.is-default rect")).fill,
             text: getComputedStyle(svg.querySelector("text")).fill,
           })"""
    )
    assert fills["plain"] != fills["chosen"], fills
    assert fills["text"] != "none", fills
    # The second series keeps its hatching: a pattern, not a colour the system replaces.
    hatched = page.locator("svg.chart rect.chart-bar--1").first
    assert hatched.evaluate("rect => getComputedStyle(rect).fill").startswith("url(")
    page.screenshot(path=str(ARTIFACTS / "about-charts-forced-colours.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize("scheme", ["dark", "light"])
@pytest.mark.parametrize("device", list(WIDTHS))
def test_axe_finds_nothing_on_about(
    browser: Browser, about_url: str, device: str, scheme: str
) -> None:
    # The CSP allows no inline script, and add_script_tag injects one: for axe only.
    page = _open(browser, about_url, WIDTHS[device], bypass_csp=True, color_scheme=scheme)
    found = _axe(page, "/about")
    for summary in page.locator("details.chart-tables > summary").all():
        summary.click()
    found += _axe(page, "/about with the tables open")
    assert not found
    page.context.close()
