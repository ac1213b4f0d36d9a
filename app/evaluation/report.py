"""Present an Evaluation: a plain-data dict for JSON, a Markdown report, a terminal table."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from app.data.files import atomic_write
from app.evaluation.group_report import group_markdown, group_terminal
from app.evaluation.run import AlgorithmResult, Evaluation
from app.evaluation.visitor import VisitorResult, VisitorTable

COUNTING_NOTE = (
    "Accuracy metrics (precision, recall, nDCG, MAP, hit rate) are averaged over the test "
    "users with at least one relevant held-out film (rated >= {threshold}); users whose "
    "held-out ratings are all lower are left out of those averages but still get a list, "
    "which counts towards coverage, popularity and latency. nDCG uses binary relevance and "
    "an ideal DCG over min(k, relevant); MAP@k divides by min(k, relevant); precision "
    "divides by k. Coverage: distinct recommended films / films in training. Popularity: "
    "median number of training ratings over all recommendations made."
)
COLUMNS = (
    ("Algorithm", "{}"),
    ("nDCG", "{:.4f}"),
    ("P", "{:.4f}"),
    ("R", "{:.4f}"),
    ("MAP", "{:.4f}"),
    ("Hit", "{:.3f}"),
    ("Cov", "{:.3f}"),
    ("Pop", "{:.0f}"),
    ("Users", "{}"),
    ("Fit s", "{:.2f}"),
    ("Rank ms", "{:.2f}"),
)


def as_dict(evaluation: Evaluation) -> dict[str, Any]:
    """Plain data for JSON; NaN (no value) becomes null."""
    data = _no_nan(dataclasses.asdict(evaluation))
    data["note"] = COUNTING_NOTE.format(threshold=evaluation.relevant_rating)
    for split, plain in zip(evaluation.splits, data["splits"], strict=True):
        cost = ease_cap_cost(split.results)
        if cost is not None:
            cost["share"] = cost["films"] / evaluation.dataset["movies"]
        plain["ease_cap"] = cost
    assert isinstance(data, dict)
    return data


def ease_cap_cost(results: list[AlgorithmResult]) -> dict[str, Any] | None:
    """EASE over every film against EASE capped to fewer (`max_films`): the films and nDCGs.

    None unless both ran without error.
    """
    full = [r for r in results if r.algorithm == "ease" and "max_films" not in r.params]
    capped = [r for r in results if r.algorithm == "ease" and "max_films" in r.params]
    if not full or not capped or full[0].error or capped[0].error or not full[0].ndcg > 0:
        return None
    return {
        "films": capped[0].params["max_films"],
        "ndcg": full[0].ndcg,
        "capped_ndcg": capped[0].ndcg,
        "cost": 1.0 - capped[0].ndcg / full[0].ndcg,
    }


def ease_cap_sentence(cost: dict[str, Any]) -> str:
    """The cap's cost in words, for the reports."""
    return (
        f"EASE capped to the {cost['films']:,} most-rated films (the share of ml-25m's films "
        f"its default memory budget holds): nDCG {cost['capped_ndcg']:.4f} against "
        f"{cost['ndcg']:.4f} over every film, {cost['cost']:.1%} lower."
    )


def write_reports(evaluation: Evaluation, folder: Path) -> tuple[Path, Path]:
    """Write latest.json and latest.md into `folder`, each via a temporary file and a rename."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "latest.json"
    markdown_path = folder / "latest.md"
    for path, text in (
        (json_path, json.dumps(as_dict(evaluation), indent=2) + "\n"),
        (markdown_path, markdown(evaluation)),
    ):
        with atomic_write(path) as temporary:
            temporary.write_text(text, encoding="utf-8")
    return json_path, markdown_path


def result_key(result: AlgorithmResult) -> str:
    """Algorithm name with its parameters, e.g. `original(k=20)`."""
    if not result.params:
        return result.algorithm
    return f"{result.algorithm}({', '.join(f'{n}={v}' for n, v in result.params.items())})"


def markdown(evaluation: Evaluation) -> str:
    """The report as Markdown: run details, then one table per split."""
    dataset = evaluation.dataset
    lines = [
        "# Offline evaluation",
        "",
        f"- Ran at: {evaluation.ran_at}",
        f"- Dataset: {dataset.get('name', '?')} ({dataset['ratings']:,} ratings, "
        f"{dataset['users']:,} users, {dataset['movies']:,} movies)",
        f"- k = {evaluation.k}, seed = {evaluation.seed}, relevant = held-out rating >= "
        f"{evaluation.relevant_rating}",
        "",
        COUNTING_NOTE.format(threshold=evaluation.relevant_rating),
    ]
    for split in evaluation.splits:
        lines += [
            "",
            f"## {split.name}: {split.description}",
            "",
            f"{split.train_ratings:,} training and {split.test_ratings:,} held-out ratings.",
            "",
        ]
        lines += _table(split.results, split.k, markdown=True)
        cost = ease_cap_cost(split.results)
        if cost is not None:
            lines += ["", ease_cap_sentence(cost)]
    if evaluation.visitor is not None:
        lines += ["", *visitor_markdown(evaluation.visitor)]
    if evaluation.group is not None:
        lines += ["", *group_markdown(evaluation.group)]
    return "\n".join(lines) + "\n"


def visitor_markdown(visitor: VisitorResult) -> list[str]:
    """The visitor protocol's tables (nDCG@k, rows = ratings given) as Markdown lines."""
    lines = [f"## visitor: {visitor.description}", "", f"Policy: {policy_text(visitor)}."]
    for part in visitor.tables:
        lines += ["", f"nDCG@{visitor.k}, {part.description}:", ""]
        lines += _visitor_rows(part, markdown=True)
    if visitor.grids:
        lines += ["", f"Starter grids compared (the policy's nDCG@{visitor.k}):", ""]
        lines += _visitor_rows(_grids_as_table(visitor), markdown=True)
    if visitor.imported is not None:
        lines += ["", f"nDCG@{visitor.k}, {visitor.imported.description}:", ""]
        lines += _visitor_rows(visitor.imported, markdown=True)
    return lines


def visitor_terminal(visitor: VisitorResult) -> str:
    """The visitor protocol's tables as aligned text."""
    blocks = [f"visitor: {visitor.description}\nPolicy: {policy_text(visitor)}"]
    for part in visitor.tables:
        blocks.append(f"nDCG@{visitor.k}, {part.description}\n" + "\n".join(_visitor_rows(part)))
    if visitor.grids:
        grids = _grids_as_table(visitor)
        blocks.append(
            f"Starter grids compared (the policy's nDCG@{visitor.k})\n"
            + "\n".join(_visitor_rows(grids))
        )
    if visitor.imported is not None:
        imported = visitor.imported
        rows = "\n".join(_visitor_rows(imported))
        blocks.append(f"nDCG@{visitor.k}, {imported.description}\n{rows}")
    return "\n\n".join(blocks) + "\n"


def policy_text(visitor: VisitorResult) -> str:
    """The policy as a phrase, e.g. `fewer than 10 ratings: userknn-weighted (k=30); ...`."""
    parts = []
    for step in visitor.policy:
        who = f"fewer than {step['below']} ratings" if step["below"] else "more"
        k = f" (k={step['k']})" if step["k"] else ""
        parts.append(f"{who}: {step['algorithm']}{k}")
    return "; ".join(parts) or "none"


def _grids_as_table(visitor: VisitorResult) -> VisitorTable:
    """One column per starter strategy, from each grid's one-column table."""
    rows = []
    for index, length in enumerate(visitor.lengths):
        cells = [
            dataclasses.replace(grid.rows[index].cells[0], algorithm=grid.draw)
            for grid in visitor.grids
        ]
        rows.append(dataclasses.replace(visitor.grids[0].rows[index], ratings=length, cells=cells))
    return VisitorTable("grids", "starter grids", [g.draw for g in visitor.grids], rows)


def _visitor_rows(part: VisitorTable, *, markdown: bool = False) -> list[str]:
    rows = [["ratings given", *part.algorithms]]
    for row in part.rows:
        rows.append([str(row.ratings), *(_cell("{:.3f}", cell.ndcg) for cell in row.cells)])
    if markdown:
        out = ["| " + " | ".join(rows[0]) + " |", "|---|" + "---:|" * len(part.algorithms)]
        return out + ["| " + " | ".join(row) + " |" for row in rows[1:]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]


def terminal_table(evaluation: Evaluation) -> str:
    """Each split's results as an aligned text table, then the visitor tables if any."""
    blocks = []
    for split in evaluation.splits:
        rows = _table(split.results, split.k, markdown=False)
        cost = ease_cap_cost(split.results)
        if cost is not None:
            rows += ["", ease_cap_sentence(cost)]
        blocks.append(f"{split.name}: {split.description}\n" + "\n".join(rows))
    if evaluation.visitor is not None:
        blocks.append(visitor_terminal(evaluation.visitor).rstrip("\n"))
    if evaluation.group is not None:
        blocks.append(group_terminal(evaluation.group).rstrip("\n"))
    return "\n\n".join(blocks) + "\n"


def _table(results: list[AlgorithmResult], k: int, *, markdown: bool) -> list[str]:
    header = [
        name if name in ("Algorithm", "Users", "Fit s", "Rank ms") else f"{name}@{k}"
        for name, _ in COLUMNS
    ]
    header[6:8] = ["Coverage", "Pop. median"]
    rows = [header]
    for result in results:
        values = (
            result_key(result),
            result.ndcg,
            result.precision,
            result.recall,
            result.map,
            result.hit_rate,
            result.coverage,
            result.popularity_median,
            result.users,
            result.fit_seconds,
            result.rank_ms_median,
        )
        cells = [_cell(fmt, value) for (_, fmt), value in zip(COLUMNS, values, strict=True)]
        if result.error:
            cells[1] = f"refused: {result.error}"
        rows.append(cells)
    if markdown:
        out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" + "---:|" * (len(COLUMNS) - 1)]
        return out + ["| " + " | ".join(row) + " |" for row in rows[1:]]
    widths = [max(len(row[i]) for row in rows if len(row) > i) for i in range(len(COLUMNS))]
    # A refusal message spans the metric columns rather than widening them.
    widths[1] = max(len(row[1]) for row in rows if not row[1].startswith("refused"))
    return [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def _cell(fmt: str, value: object) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return fmt.format(value)


def _no_nan(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _no_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(item) for item in value]
    return value


PUBLISHED = Path(__file__).with_name("published.json")
"""The developers' run on ml-latest-small, shipped so that a fresh server has a table to show."""


def read_latest(folder: Path) -> tuple[dict[str, Any], bool] | None:
    """The latest report in `folder` (latest.json), else the published one; and whether local.

    A missing or unreadable local report falls back to the published one; None if neither
    can be read.
    """
    for path, local in ((folder / "latest.json", True), (PUBLISHED, False)):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and isinstance(report.get("splits"), list):
            return report, local
    return None
