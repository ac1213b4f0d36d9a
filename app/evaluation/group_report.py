"""The group evaluation's tables, in Markdown and as aligned text (report.py includes them)."""

from __future__ import annotations

import math

from app.evaluation.group import BASELINES, GroupResult, beats_baselines, by_size


def verdict(group: GroupResult) -> str:
    """Which strategy is the default and whether it beats both baselines at every size."""
    if beats_baselines(group.rows, group.default):
        return (
            f"Default: {group.default}, which beats both baselines ({', '.join(BASELINES)}) "
            "on both measures at every group size (averaged over groupings and ratings given)."
        )
    return (
        f"Default: {group.default}, the best measured; no strategy beats both baselines "
        f"({', '.join(BASELINES)}) on both measures at every group size."
    )


def group_tables(group: GroupResult) -> list[tuple[str, list[list[str]]]]:
    """(caption, rows) for the summary by size, then one table per grouping and N."""
    sizes = group.sizes
    summary = by_size(group.rows)
    names = list(dict.fromkeys(row.strategy for row in group.rows))
    header = ["strategy", *(f"{size} members" for size in sizes)]
    tables = [
        (
            "By group size, averaged over groupings and ratings given: mean nDCG@10 over "
            "members / the least-satisfied member's",
            [header]
            + [
                [name, *(_pair(*summary[size][name]) for size in sizes if size in summary)]
                for name in names
            ],
        )
    ]
    for grouping in group.groupings:
        for length in group.ratings_per_member:
            cells = {
                (row.strategy, row.group_size): _pair(row.mean_ndcg, row.min_ndcg)
                for row in group.rows
                if row.grouping == grouping and row.ratings_per_member == length
            }
            tables.append(
                (
                    f"{grouping} groups, {length} ratings each: mean / least-satisfied nDCG@10",
                    [header]
                    + [[name, *(cells.get((name, s), "-") for s in sizes)] for name in names],
                )
            )
    return tables


def group_markdown(group: GroupResult) -> list[str]:
    """The group section of latest.md."""
    lines = [f"## group: {group.description}", "", verdict(group)]
    for caption, rows in group_tables(group):
        lines += ["", f"{caption}:", ""]
        lines += ["| " + " | ".join(rows[0]) + " |", "|---|" + "---:|" * (len(rows[0]) - 1)]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return lines


def group_terminal(group: GroupResult) -> str:
    """The group section as aligned text."""
    blocks = [f"group: {group.description}\n{verdict(group)}"]
    for caption, rows in group_tables(group):
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            )
            for row in rows
        ]
        blocks.append(caption + "\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _pair(mean: float, least: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.3f} / {least:.3f}"
