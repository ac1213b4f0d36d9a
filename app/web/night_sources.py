"""What a member brings to a movie night, read from a form: a MovieLens user's ratings, a
/rate link's, a saved profile's (its private link, or its token from the /me page); and
which night a pasted link names. (An export file or its pasted text: imports.posted_export.)

A profile's token is its password: it comes in a form's body only, and no message here
quotes it (nor any other part of what was pasted).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from app.engine import VisitRequest
from app.engine.profiles import ProfileNotFound
from app.web.errors import problem
from app.web.params import InvalidInput, parse_rating_list, parse_user_id
from app.web.shared import service

Pairs = list[tuple[int, float]]

_SECRET = r"[A-Za-z0-9_-]{1,64}"
"""A night's id or a profile's token: URL-safe base64 (22 characters as made)."""
_NIGHT_PATH = re.compile(rf"/nights/({_SECRET})/?")
_PROFILE_PATH = re.compile(r"/me/([^/]*)/?")
BAD_NIGHT = "Paste the night's link (it ends in /nights/ and its id), or the id alone."


async def brought(from_user: str, link: str) -> Pairs:
    """The ratings brought in: a MovieLens user's (their highest rated), a /rate link's, or a
    saved profile's, from its private link (/me/...). InvalidInput, InvalidRatings."""
    if from_user.strip():
        asked = VisitRequest(from_user=parse_user_id(from_user, "from_user"), n=1)
        visit = (await service().visit(asked)).value
        if visit.error:
            raise InvalidInput("from_user", problem(visit.error).message)
        return visit.ratings.pairs()
    text = link.strip()
    found = _PROFILE_PATH.fullmatch(urlsplit(text).path)
    if found:
        return await profile_ratings(found[1], "link")
    if "r=" in text or "?" in text:
        text = (parse_qs(urlsplit(text).query).get("r") or [""])[0]
    pairs = parse_rating_list(text)
    if not pairs:
        raise InvalidInput(
            "link",
            "Paste a /rate link with ratings, your saved profile's private link, "
            "or a MovieLens user id.",
        )
    return (await service().check_ratings(pairs)).pairs()


async def profile_ratings(token: str, field: str = "profile") -> Pairs:
    """A saved profile's ratings (none for no token); InvalidInput if there is no such profile."""
    token = token.strip()
    if not token:
        return []
    try:
        if not re.fullmatch(_SECRET, token):
            raise ProfileNotFound()
        return list(await service().profiles.get(token))
    except ProfileNotFound as exc:
        message = f"{exc.public} Save your ratings again from Rate films."
        raise InvalidInput(field, message) from None


def night_named(text: str) -> str:
    """The id of the night a pasted link (whole, or its path) or id names; InvalidInput."""
    text = text.strip()
    if re.fullmatch(_SECRET, text):
        return text
    found = _NIGHT_PATH.fullmatch(urlsplit(text).path)
    if not found:
        raise InvalidInput("night", BAD_NIGHT)
    return found[1]
