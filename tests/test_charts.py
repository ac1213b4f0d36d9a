"""The /about charts: one accessible SVG per chart whose bars are as long as their values say,
drawn from the evaluation's data (tests/evaluation_fixture.py: the published report plus a group
section of the fixed shape), and /about leading with them, the tables folded below."""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
from selectolax.lexbor import LexborHTMLParser, LexborNode

from app.config import Settings
from app.web.charts import Chart, Row
from app.web.evaluation_charts import (
    about_charts,
    group_chart,
    group_size_chart,
    split_chart,
    visitor_chart,
)
from tests.conftest import one, parse, text_of, texts
from tests.evaluation_fixture import SIZES, report_with_groups

if TYPE_CHECKING:
    from quart import Quart
    from quart.typing import TestClientProtocol

LABELS = {"ease": "EASE: linear film-to-film model", "popularity": "Most rated films"}


def svg_of(chart: Chart) -> LexborNode:
    """The chart's SVG as parsed HTML, checked to be the only root."""
    return one(parse(str(chart.svg)), "svg")


def bars(svg: LexborNode, series: int = 0) -> list[float]:
    """The widths of the rows' bars of one series, top to bottom."""
    return [
        float(rect.attributes["width"] or "nan")
        for rect in svg.css(f"g.chart-row rect.chart-bar--{series}")
    ]


def assert_proportional(widths: list[float], values: list[float]) -> None:
    """Every bar's length over its value is the same (to the drawing's 0.01 rounding)."""
    assert len(widths) == len(values) and values
    ratios = [width / value for width, value in zip(widths, values, strict=True)]
    assert max(ratios) - min(ratios) < 0.01 / min(values) + 1e-6, ratios


def assert_accessible(svg: LexborNode, figures: list[float]) -> None:
    """role=img, named by its <title>, described by a <desc> that gives every figure."""
    assert svg.attributes["role"] == "img"
    title = one(svg, "title")
    desc = one(svg, "desc")
    assert svg.attributes["aria-labelledby"] == title.attributes["id"]
    assert svg.attributes["aria-describedby"] == desc.attributes["id"]
    assert text_of(title)
    for value in figures:
        assert f"{value:.3f}" in text_of(desc), (value, text_of(desc))
    # Scales to the width it is given.
    assert svg.attributes["width"] == "100%" and svg.attributes["viewBox"].startswith("0 0 ")


@pytest.fixture
def report() -> dict[str, Any]:
    """The published report with a made-up group section of the real shape."""
    return report_with_groups()


def test_each_split_chart_ranks_the_algorithms_with_bars_as_long_as_their_ndcg(
    report: dict[str, Any],
) -> None:
    for split in report["splits"]:
        chart = split_chart(split, LABELS, "ease")
        svg = svg_of(chart)
        # One bar per algorithm (its best setting), EASE capped to fewer films left out.
        best: dict[str, float] = {}
        for r in split["results"]:
            if "max_films" not in r["params"]:
                best[r["algorithm"]] = max(best.get(r["algorithm"], 0.0), r["ndcg"])
        expected = sorted(best.values(), reverse=True)
        assert_proportional(bars(svg), expected)
        assert texts(svg, "g.chart-row text.chart-value") == [f"{v:.3f}" for v in expected]
        assert_accessible(svg, expected)
        (marked,) = svg.css("g.chart-row.is-default")
        assert " ".join(texts(marked, "text.chart-label")).endswith("(default)")
        assert text_of(one(marked, "text.chart-value")) == f"{best['ease']:.3f}"
        assert chart.takeaway.startswith(f"{LABELS['ease']}, the default, scores highest")


def test_the_split_charts_share_one_scale(report: dict[str, Any]) -> None:
    charts = about_charts(report, LABELS, "ease")
    random_split, temporal = (svg_of(chart) for chart in charts[:2])
    widest = max(bars(random_split))
    # The temporal split's best is shorter by as much as its nDCG is lower.
    ease = {
        s["name"]: next(r["ndcg"] for r in s["results"] if r["algorithm"] == "ease")
        for s in report["splits"]
    }
    assert max(bars(temporal)) / widest == pytest.approx(
        ease["temporal"] / ease["random"], abs=1e-3
    )


def test_a_default_that_is_not_best_is_still_marked_and_named(report: dict[str, Any]) -> None:
    chart = split_chart(report["splits"][0], LABELS, "popularity")
    svg = svg_of(chart)
    (marked,) = svg.css("g.chart-row.is-default")
    assert marked == svg.css("g.chart-row")[-1], "the most rated films come last"
    assert "the default scores 0.152" in chart.takeaway


def test_the_visitor_chart_gives_rate_and_the_most_rated_films_by_ratings_given(
    report: dict[str, Any],
) -> None:
    chart = visitor_chart(report["visitor"])
    svg = svg_of(chart)
    starters = report["visitor"]["tables"][0]
    assert starters["draw"] == "starters"
    ours = [
        next(c["ndcg"] for c in row["cells"] if c["algorithm"] == "policy")
        for row in starters["rows"]
    ]
    popular = [
        next(c["ndcg"] for c in row["cells"] if c["algorithm"] == "popularity")
        for row in starters["rows"]
    ]
    assert texts(svg, "g.chart-row text.chart-label") == [
        "3 ratings",
        "5 ratings",
        "10 ratings",
        "20 ratings",
    ]
    # One scale for both series.
    assert_proportional(bars(svg, 0) + bars(svg, 1), ours + popular)
    assert_accessible(svg, ours + popular)
    # The second series is hatched, and the legend shows both: told apart without colour.
    assert all(
        r.attributes["fill"] == "url(#chart-visitor-hatch-1)" for r in svg.css("rect.chart-bar--1")
    )
    assert texts(svg, "g.chart-key text") == ["/rate", "Most rated films"]
    assert "ahead of the most rated films at every step" in chart.takeaway


def test_the_group_chart_averages_each_strategy_and_marks_the_default_and_baselines(
    report: dict[str, Any],
) -> None:
    group = report["group"]
    chart = group_chart(group)
    svg = svg_of(chart)
    means: dict[str, list[float]] = {}
    least: dict[str, list[float]] = {}
    for row in group["rows"]:
        means.setdefault(row["label"], []).append(row["mean_ndcg"])
        least.setdefault(row["label"], []).append(row["min_ndcg"])
    order = sorted(means, key=lambda label: -sum(means[label]))
    labels = texts(svg, "g.chart-row text.chart-label")
    unmarked = [label.removesuffix(" (default)").removesuffix(" (baseline)") for label in labels]
    assert unmarked == order
    assert labels[0] == "Average (default)"
    assert "One member picks (baseline)" in labels and "Most rated films (baseline)" in labels
    mean_of = [sum(means[label]) / len(means[label]) for label in order]
    least_of = [sum(least[label]) / len(least[label]) for label in order]
    assert_proportional(bars(svg, 0) + bars(svg, 1), mean_of + least_of)
    assert_accessible(svg, mean_of + least_of)
    assert "beats both baselines" in chart.takeaway and "at every group size" in chart.takeaway


def test_the_group_takeaway_says_so_when_a_baseline_wins_at_one_size(
    report: dict[str, Any],
) -> None:
    group = copy.deepcopy(report["group"])
    for row in group["rows"]:
        if row["strategy"] == "popularity" and row["group_size"] == SIZES[-1]:
            row["min_ndcg"] = 0.5
    chart = group_chart(group)
    assert "not ahead of both baselines" in chart.takeaway


def test_the_group_size_chart_sets_the_default_against_the_baselines_at_each_size(
    report: dict[str, Any],
) -> None:
    group = report["group"]
    chart = group_size_chart(group)
    svg = svg_of(chart)
    assert texts(svg, "g.chart-row text.chart-label") == [f"{size} members" for size in SIZES]
    names = ["average", "popularity", "one_member_picks"]
    assert texts(svg, "g.chart-key text") == [
        "Average (default)",
        "Most rated films",
        "One member picks",
    ]
    expected: list[float] = []
    for index, name in enumerate(names):
        widths = bars(svg, index)
        values = []
        for size in SIZES:
            measured = [
                r["mean_ndcg"]
                for r in group["rows"]
                if r["strategy"] == name and r["group_size"] == size
            ]
            values.append(sum(measured) / len(measured))
        assert len(widths) == len(SIZES)
        expected += values
    assert_proportional([w for i in range(3) for w in bars(svg, i)], expected)
    assert_accessible(svg, expected)
    # Three series: solid, hatched, dotted.
    fills = {rect.attributes.get("fill") for rect in svg.css("g.chart-row rect.chart-bar--2")}
    assert fills == {"url(#chart-group-sizes-hatch-2)"}
    assert "stays ahead of both baselines at every size from 2 to 6 members" in chart.takeaway
    for row in group["rows"]:
        if row["strategy"] == "one_member_picks" and row["group_size"] == 2:
            row["mean_ndcg"] = 0.9
    assert "not ahead of both baselines" in group_size_chart(group).takeaway


def test_labels_are_escaped_and_missing_values_drawn_as_a_dash() -> None:
    chart = Chart(
        slug="chart-x",
        heading="<b>heading</b>",
        takeaway="",
        measure="nDCG@10",
        series=("a", "b"),
        rows=(Row("<script>alert(1)</script>", (0.2, None)), Row("plain", (0.1, 0.05))),
    )
    tree = parse(f"<div>{chart.svg}</div>")
    assert not tree.css("script") and not tree.css("svg b")
    assert texts(tree, "g.chart-row text.chart-label")[0] == "<script>alert(1)</script>"
    assert texts(tree, "g.chart-row text.chart-value") == ["0.200", "–", "0.100", "0.050"]
    assert bars(one(tree, "svg"), 1) == [0.0, pytest.approx(0.05 * 260 / 0.2)]


async def test_a_report_of_another_shape_gets_no_chart_and_no_error_page(
    app: Quart, settings: Settings, report: dict[str, Any]
) -> None:
    for row in report["group"]["rows"]:
        del row["mean_ndcg"]
    report["visitor"]["tables"] = [{"draw": "starters"}]
    report["splits"][1]["results"] = [{"algorithm": "ease", "ndcg": None, "error": "failed"}]
    assert [chart.slug for chart in about_charts(report, LABELS, "ease")] == ["chart-random"]
    folder = settings.data_dir / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(report))
    page = await about_page(app)
    assert [svg.attributes["aria-labelledby"] for svg in page.css("svg.chart")] == [
        "chart-random-title"
    ]
    assert not page.css("table.group-table")


def test_no_report_no_charts() -> None:
    assert about_charts(None, LABELS, "ease") == []
    assert about_charts({"splits": [], "visitor": None}, LABELS, "ease") == []


@pytest.fixture
def app_with_groups(app: Quart, settings: Settings, report: dict[str, Any]) -> Quart:
    """The tiny app, whose own evaluation (data/evaluation/latest.json) has a group section."""
    folder = settings.data_dir / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(report))
    return app


async def about_page(app: Quart) -> LexborHTMLParser:
    """/about of `app`, parsed."""
    async with app.test_app() as test_app:
        client: TestClientProtocol = test_app.test_client()
        response = await client.get("/about")
        assert response.status_code == 200
        return parse(await response.get_data(as_text=True))


async def test_about_leads_with_the_charts_and_folds_the_tables(app_with_groups: Quart) -> None:
    page = await about_page(app_with_groups)
    first_card = page.css("main section.card")[0]
    figures = first_card.css("figure.chart-figure")
    assert [text_of(one(f, "h2")) for f in figures] == [
        "Known users, random split",
        "Known users, temporal split",
        "New visitors, by ratings given",
        "Groups: how one list is chosen",
        "Groups, by size",
    ]
    for figure in figures:
        assert one(figure, "svg.chart").attributes["role"] == "img"
        assert text_of(one(figure, "p.chart-takeaway")).endswith(".")
        assert figure.attributes["aria-labelledby"] == one(figure, "h2").attributes["id"]
    # Ids are unique across the page, so each chart's patterns and labels are its own.
    ids = [node.attributes["id"] for node in page.css("[id]")]
    assert len(ids) == len(set(ids))
    # Every table stays, folded below the charts in a <details> with a <summary>.
    tables = page.css("main table")
    assert len(tables) == 2 + 2 + 1 + 1  # the splits, visitors' two draws, the grids, groups
    for table in tables:
        folded = table.parent
        while folded is not None and folded.tag != "details":
            folded = folded.parent
        assert folded is not None and folded.css_first("summary") is not None
    group_rows = page.css("table.group-table tbody tr")
    assert len(group_rows) == 7
    assert texts(page, "table.group-table tr.is-default th") == ["Average (default)"]


async def test_about_without_a_group_evaluation_draws_the_other_charts(
    app: Quart, settings: Settings, report: dict[str, Any]
) -> None:
    del report["group"]
    folder = settings.data_dir / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.json").write_text(json.dumps(report))
    page = await about_page(app)
    assert len(page.css("svg.chart[role=img]")) == 3  # the two splits and new visitors
    assert not page.css("#group-evaluation")
