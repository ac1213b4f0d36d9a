"""The /about page's charts, made from the evaluation's plain data (`movierec evaluate`).

Pure functions of that data, so a test can draw them without a server: each known-user split,
new visitors by ratings given, and the group evaluation when the report has one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from statistics import fmean
from typing import Any

from app.web.charts import Chart, Row, figure, largest

log = logging.getLogger(__name__)

BASELINES = {"popularity": "baseline", "one_member_picks": "baseline"}
"""The group evaluation's baselines (its strategy names), marked in the group chart."""


def about_charts(
    report: Mapping[str, Any] | None, labels: Mapping[str, str], default_algorithm: str
) -> list[Chart]:
    """The charts /about leads with: each known-user split, new visitors, groups if measured.

    A part of the report not of the shape expected (a hand-edited or older latest.json) gets
    no chart, logged once per request, rather than an error page.
    """
    if not report:
        return []
    splits = [
        chart
        for split in report.get("splits") or []
        if (chart := _drawn(split_chart, split, labels, default_algorithm))
    ]
    # Side by side, the splits share a scale: a bar as long as another is as good.
    top = max((largest(chart) for chart in splits), default=0.0)
    charts: list[Chart | None] = [replace(chart, top=top) for chart in splits]
    visitor = report.get("visitor")
    if visitor:
        charts.append(_drawn(visitor_chart, visitor))
    group = report.get("group")
    if group:
        charts += [_drawn(group_chart, group), _drawn(group_size_chart, group)]
    return [chart for chart in charts if chart]


def _drawn(make: Callable[..., Chart], *data: Any) -> Chart | None:
    """`make(*data)`, or None when the data is not of the shape it reads or has no rows."""
    try:
        chart = make(*data)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        log.warning("/about: no %s (%s: %s)", make.__name__, type(error).__name__, error)
        return None
    return chart if chart.rows else None


def split_chart(
    split: Mapping[str, Any], labels: Mapping[str, str], default_algorithm: str
) -> Chart:
    """Each algorithm's nDCG on a known-user split, best first, the default marked.

    An algorithm measured with several settings shows its best; EASE capped to fewer films
    is left to the table (it measures the memory cap, not an algorithm).
    """
    best: dict[str, Mapping[str, Any]] = {}
    for result in split["results"]:
        if _usable(result) and "max_films" not in result.get("params", {}):
            kept = best.get(result["algorithm"])
            if kept is None or result["ndcg"] > kept["ndcg"]:
                best[result["algorithm"]] = result
    ranked = sorted(best.values(), key=lambda r: -r["ndcg"])
    rows = tuple(
        Row(
            _result_label(r, labels),
            (r["ndcg"],),
            default=r["algorithm"] == default_algorithm,
        )
        for r in ranked
    )
    k = split.get("k", 10)
    name = str(split.get("name", "split"))
    if not ranked:
        return Chart(f"chart-{_slug(name)}", "", "", "", (), ())
    top, rest = ranked[0], ranked[1:]
    top_label = _result_label(top, labels)
    if top["algorithm"] == default_algorithm and rest:
        takeaway = (
            f"{top_label}, the default, scores highest: nDCG@{k} {top['ndcg']:.3f}, "
            f"against {rest[0]['ndcg']:.3f} for the next best."
        )
    else:
        chosen = [r for r in ranked if r["algorithm"] == default_algorithm]
        takeaway = f"{top_label} scores highest: nDCG@{k} {top['ndcg']:.3f}" + (
            f"; the default scores {chosen[0]['ndcg']:.3f}." if chosen else "."
        )
    return Chart(
        slug=f"chart-{_slug(name)}",
        heading=f"Known users, {name} split",
        takeaway=takeaway,
        measure=f"nDCG@{k} on the {name} split ({split.get('description', name)})",
        series=(f"nDCG@{k}",),
        rows=rows,
    )


def visitor_chart(visitor: Mapping[str, Any]) -> Chart:
    """New visitors: what /rate gives against the most rated films, by ratings given.

    From the profiles the page builds (the starter grid first) when measured, else the first.
    """
    tables = visitor["tables"]
    table = next((t for t in tables if t.get("draw") == "starters"), tables[0])
    k = visitor.get("k", 10)
    rows = []
    for row in table["rows"]:
        cells = {cell["algorithm"]: cell.get("ndcg") for cell in row["cells"]}
        values = (cells.get("policy"), cells.get("popularity"))
        rows.append(Row(f"{row['ratings']} ratings", values))
    measured = [r for r in rows if r.values[0] is not None]
    takeaway = "No visitor lists were measured."
    if measured:
        first, last = measured[0], measured[-1]
        ahead = all(
            popular is None or ours > popular
            for ours, popular in (r.values for r in measured)
            if ours is not None
        )
        takeaway = (
            f"More ratings, better lists: /rate's nDCG@{k} goes from {figure(first.values[0])} "
            f"after {first.label} to {figure(last.values[0])} after {last.label}"
            + (", ahead of the most rated films at every step." if ahead else ".")
        )
    return Chart(
        slug="chart-visitor",
        heading="New visitors, by ratings given",
        takeaway=takeaway,
        measure=f"nDCG@{k} for new visitors, by the number of films they rated",
        series=("/rate", "Most rated films"),
        rows=tuple(rows),
    )


def group_chart(group: Mapping[str, Any]) -> Chart:
    """Each group strategy's nDCG, members' mean and least-satisfied member's, best first.

    Averaged over every group size, grouping and number of ratings measured; the takeaway
    says whether the default beats both baselines at every group size.
    """
    rows_by_strategy: dict[str, list[Mapping[str, Any]]] = {}
    for row in group["rows"]:
        rows_by_strategy.setdefault(row["strategy"], []).append(row)
    default = str(group.get("default") or "")
    rows = sorted(
        (
            Row(
                measured[0]["label"],
                (_mean(measured, "mean_ndcg"), _mean(measured, "min_ndcg")),
                default=name == default,
                note=BASELINES.get(name, ""),
            )
            for name, measured in rows_by_strategy.items()
        ),
        key=lambda r: -(r.values[0] or 0.0),
    )
    sizes = group.get("sizes") or sorted({row["group_size"] for row in group["rows"]})
    chosen = next((r for r in rows if r.default), None)
    if chosen is None:
        takeaway = f"{rows[0].label} gives the best lists on average."
    elif beats_baselines(group["rows"], default, sizes):
        takeaway = (
            f"{chosen.label}, the default, beats both baselines for the members on average "
            f"and for the least-satisfied one, at every group size ({_sizes(sizes)})."
        )
    else:
        takeaway = (
            f"{chosen.label}, the default, is the best measured, though not ahead of both "
            "baselines on both measures at every group size."
        )
    return Chart(
        slug="chart-group",
        heading="Groups: how one list is chosen",
        takeaway=takeaway,
        measure=(
            "nDCG@10 of the group's list, averaged over group sizes "
            f"{_sizes(sizes)}, for the members on average and for the least-satisfied member"
        ),
        series=("Members' mean", "Least-satisfied member"),
        rows=tuple(rows),
    )


def group_size_chart(group: Mapping[str, Any]) -> Chart:
    """The default against the baselines at each group size: the members' mean nDCG.

    Averaged over groupings and ratings given; a baseline not measured is left out.
    """
    default = str(group.get("default") or "")
    labels = {row["strategy"]: row["label"] for row in group["rows"]}
    if default not in labels:
        return Chart("chart-group-sizes", "", "", "", (), ())
    names = [default, *(b for b in BASELINES if any(r["strategy"] == b for r in group["rows"]))]
    sizes = group.get("sizes") or sorted({row["group_size"] for row in group["rows"]})
    rows = []
    for size in sizes:
        at_size = [row for row in group["rows"] if row["group_size"] == size]
        values = tuple(
            _mean(measured, "mean_ndcg") if measured else None
            for measured in ([r for r in at_size if r["strategy"] == name] for name in names)
        )
        rows.append(Row(f"{size} members", values))
    ahead = all(
        ours is not None and all(theirs is None or ours > theirs for theirs in others)
        for ours, *others in (row.values for row in rows)
    )
    label = labels[default]
    takeaway = (
        f"{label}, the default, stays ahead of both baselines at every size from "
        f"{sizes[0]} to {sizes[-1]} members."
        if ahead
        else f"{label}, the default, is not ahead of both baselines at every group size."
    )
    return Chart(
        slug="chart-group-sizes",
        heading="Groups, by size",
        takeaway=takeaway,
        measure="Members' mean nDCG@10 of the group's list at each group size",
        series=(f"{label} (default)", *(labels[name] for name in names[1:])),
        rows=tuple(rows),
        default_first=True,
    )


def beats_baselines(rows: Iterable[Mapping[str, Any]], strategy: str, sizes: Sequence[int]) -> bool:
    """True when `strategy` beats every baseline on both measures at each size, on average."""
    rows = list(rows)
    for size in sizes:
        at_size = [r for r in rows if r["group_size"] == size]
        ours = [r for r in at_size if r["strategy"] == strategy]
        if not ours:
            return False
        for baseline in BASELINES:
            theirs = [r for r in at_size if r["strategy"] == baseline]
            if theirs and not all(
                _mean(ours, measure) > _mean(theirs, measure)
                for measure in ("mean_ndcg", "min_ndcg")
            ):
                return False
    return True


def group_summary(report: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """For the table: each strategy's mean and least-satisfied nDCG at each group size.

    Empty when the report has no group evaluation, or one not of the expected shape.
    """
    group = (report or {}).get("group") or {}
    try:
        return _summarise(group.get("rows") or [])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        log.warning("/about: no group table (%s: %s)", type(error).__name__, error)
        return []


def _summarise(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the group evaluation averaged per strategy and group size."""
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = table.setdefault(row["strategy"], {"label": row["label"], "cells": {}})
        entry["cells"].setdefault(row["group_size"], []).append(row)
    return [
        {
            "strategy": name,
            "label": entry["label"],
            "cells": {
                size: (_mean(measured, "mean_ndcg"), _mean(measured, "min_ndcg"))
                for size, measured in entry["cells"].items()
            },
        }
        for name, entry in table.items()
    ]


def _result_label(result: Mapping[str, Any], labels: Mapping[str, str]) -> str:
    """An algorithm's label, with its settings when it was measured with any."""
    label = str(result.get("label") or labels.get(result["algorithm"], result["algorithm"]))
    params = result.get("params") or {}
    settings = ", ".join(f"{name}={value}" for name, value in sorted(params.items()))
    return f"{label} ({settings})" if settings else label


def _usable(result: Mapping[str, Any]) -> bool:
    """A result that ran and has a score."""
    return not result.get("error") and isinstance(result.get("ndcg"), int | float)


def _mean(rows: Iterable[Mapping[str, Any]], measure: str) -> float:
    """One measure's mean over rows, each weighted by the number of groups it measured."""
    rows = list(rows)
    weights = [float(row.get("groups") or 1) for row in rows]
    return fmean([float(row[measure]) for row in rows], weights)


def _slug(name: str) -> str:
    """`name` as a piece of an HTML id: lowercase letters, digits and hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "split"


def _sizes(sizes: Sequence[int]) -> str:
    """2, 3, 4 and 6 members."""
    names = [str(size) for size in sizes]
    listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)
    return f"{listed} members"
