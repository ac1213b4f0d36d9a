"""What a movie night's pages show: the whole page, the polled list, a member's own part
after a change, and which member of the night this browser is (its cookie, COOKIE).
"""

from __future__ import annotations

import asyncio
from typing import Any

from quart import redirect, request, url_for
from quart.typing import ResponseReturnValue

from app.engine import (
    MAX_MEMBERS,
    MAX_NAME,
    MAX_NIGHT_RATINGS,
    GroupFilm,
    Member,
    Movie,
    Night,
    Nights,
    VisitRequest,
)
from app.web.qr import qr_svg
from app.web.shared import VARY, is_fragment_request, render, service

COOKIE = "night_member"
"""The member's "<member id>:<token>"; ids and tokens are URL-safe base64, without a colon."""
QR_LABEL = "QR code of this night's link"


def nights() -> Nights:
    """The Service's movie nights."""
    return service().nights


async def page(
    night_id: str, status: int = 200, as_member: Member | None = None, **extra: Any
) -> tuple[str, int, dict[str, str]]:
    """The night's page, for this browser's member (or `as_member`, who has just joined)."""
    found = await nights().get(night_id)
    mine = member_of(found, as_member)
    context = await live_context(found, mine)
    if mine:
        visit = (await service().visit(VisitRequest(ratings=mine.ratings, n=1))).value
        context |= {"rated": visit.rated, "ratings": visit.ratings, "films": visit.starters}
    share = url_for("nights.night", night_id=found.id, _external=True)
    context |= {
        "share_url": share,
        # 24 ms of pure Python the first time: off the event loop, then kept.
        "qr_svg": await asyncio.to_thread(qr_svg, share, QR_LABEL),
        "query": "",
        "list_id": "found",
        "max_name": MAX_NAME,
        "max_members": MAX_MEMBERS,
        "max_night_ratings": MAX_NIGHT_RATINGS,
        **extra,
    }
    return render("night.html", **context), status, VARY


async def live(night_id: str) -> str:
    return render("partials/night_live.html", **await live_context(await nights().get(night_id)))


async def live_context(found: Night, mine: Member | None = None) -> dict[str, Any]:
    """What the polled part shows: the pick, the members, the group's list."""
    chosen = await nights().recommendations(found.id)
    listed = chosen.recommendations
    night = chosen.night
    picked: GroupFilm | Movie | None = next(
        (f for f in listed.films if f.movie_id == night.picked), None
    )
    if night.picked is not None and picked is None:
        # The pick left the list (a member rated it since): look its title up.
        visit = (await service().visit(VisitRequest(ratings=[(night.picked, 5.0)], n=1))).value
        picked = visit.rated[0][0] if visit.rated else None
    raters: dict[int, list[str]] = {}
    for member in night.members:
        for movie_id, _ in member.ratings:
            raters.setdefault(movie_id, []).append(member.name)
    return {
        "night": night,
        "group": listed,
        "picked": picked,
        "me": member_of(night, mine),
        "raters": raters,
    }


async def changed(night_id: str, template: str) -> ResponseReturnValue:
    """After a member's change: the part it changed (htmx), or back to the page."""
    if not is_fragment_request():
        return redirect(url_for("nights.night", night_id=night_id), 303)
    if template.endswith("night_live.html"):
        html = await live(night_id)
    else:
        mine = member_of(await nights().get(night_id))
        pairs = mine.ratings if mine else ()
        visit = (await service().visit(VisitRequest(ratings=pairs, n=1))).value
        html = render(
            template, rated=visit.rated, night_id=night_id, max_night_ratings=MAX_NIGHT_RATINGS
        )
    # The member's own page need not wait for its next poll to show the new list.
    return html, 200, {**VARY, "HX-Trigger": "night-changed"}


def member_of(found: Night, joined: Member | None = None) -> Member | None:
    """This browser's member of the night, if it joined (its token is checked on each change);
    `joined` if it has just joined, before its cookie comes back."""
    member_id = joined.id if joined else request.cookies.get(COOKIE, "").partition(":")[0]
    return next((m for m in found.members if m.id == member_id), None)
