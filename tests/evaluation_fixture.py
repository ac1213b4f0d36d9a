"""An evaluation report with a group section of the fixed shape branch `group` writes.

The published report (known-user splits and new visitors) plus made-up group figures, so the
/about charts can be drawn and checked before a real group evaluation is published.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from app.evaluation.report import PUBLISHED

STRATEGIES = {
    "average": ("Average", 0.130),
    "least_misery": ("Least misery", 0.118),
    "average_without_misery": ("Average without misery", 0.128),
    "borda": ("Borda count", 0.121),
    "gfar": ("Fair turns (GFAR)", 0.126),
    "popularity": ("Most rated films", 0.097),
    "one_member_picks": ("One member picks", 0.112),
}
"""Strategy name -> (label, mean nDCG@10 at 2 members, 5 ratings each)."""
SIZES = [2, 3, 4, 6]
RATINGS = [5, 10, 20]
GROUPINGS = ["random", "like-minded"]


def group_section(default: str = "average") -> dict[str, Any]:
    """The report's "group" key: every strategy at every size, grouping and number of ratings.

    Scores grow with ratings given, are higher for like-minded groups and fall with group
    size, the least-satisfied member's most, as measured.
    """
    rows = []
    for grouping in GROUPINGS:
        for size in SIZES:
            for ratings in RATINGS:
                for name, (label, base) in STRATEGIES.items():
                    mean = base * (1 + ratings / 40) * (1.2 if grouping == "like-minded" else 1)
                    mean *= 1 - size / 50
                    rows.append(
                        {
                            "strategy": name,
                            "label": label,
                            "group_size": size,
                            "grouping": grouping,
                            "ratings_per_member": ratings,
                            "mean_ndcg": round(mean, 6),
                            "min_ndcg": round(mean * 0.8 / size, 6),
                            "groups": 200,
                        }
                    )
    return {
        "description": "groups of 2, 3, 4, 6 (made up for the tests)",
        "sizes": SIZES,
        "ratings_per_member": RATINGS,
        "groupings": GROUPINGS,
        "rows": rows,
        "default": default,
    }


def report_with_groups(default: str = "average") -> dict[str, Any]:
    """The published report with `group_section()` added."""
    report: dict[str, Any] = copy.deepcopy(json.loads(PUBLISHED.read_text()))
    report["group"] = group_section(default)
    return report
