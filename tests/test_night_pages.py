"""A movie night's pages on the tiny release: start, join, rate, the polled list, decide.

Each member is a test client of their own, holding their own cookie; the pages are checked
by their elements (selectolax), never by substrings.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from quart import Quart

from app import create_app
from app.config import Settings
from tests.conftest import one, parse, text_of, texts, wait_until_settled

if TYPE_CHECKING:  # pytest would try to collect a Test* class imported at run time
    from quart.typing import TestAppProtocol, TestClientProtocol

FRAGMENT = {"HX-Request": "true"}


async def start_night(client: TestClientProtocol) -> str:
    """Start a night as a visitor would (POST, then the redirect); its path."""
    response = await client.post("/nights")
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/nights/")
    return location


async def join(app: TestAppProtocol, night: str, name: str) -> TestClientProtocol:
    """A new browser that joins `night` as `name`."""
    member = app.test_client()
    response = await member.post(f"{night}/join", form={"name": name})
    assert response.status_code == 303, await response.get_data(as_text=True)
    return member


async def rate(member: TestClientProtocol, night: str, pair: str) -> None:
    response = await member.post(f"{night}/ratings", form={"set": pair}, headers=FRAGMENT)
    assert response.status_code == 200, await response.get_data(as_text=True)


async def live_titles(client: TestClientProtocol, night: str) -> list[str]:
    page = parse(await (await client.get(night)).get_data(as_text=True))
    return texts(page, "#night-live .group-films .movie-title")


async def test_home_and_rate_offer_to_start_a_night(client: TestClientProtocol) -> None:
    for path in ("/", "/rate"):
        page = parse(await (await client.get(path)).get_data(as_text=True))
        form = one(page, ".night-start form")
        assert form.attributes["method"] == "post"
        assert form.attributes["action"] == "/nights"
        assert text_of(one(form, "button")) == "Start a movie night"


async def test_a_new_night_shows_its_link_qr_code_and_join_form(
    client: TestClientProtocol,
) -> None:
    night = await start_night(client)
    response = await client.get(night)
    assert response.status_code == 200
    page = parse(await response.get_data(as_text=True))
    assert one(page, "#share-url").attributes["value"] == f"http://localhost{night}"
    assert "open" in one(page, "details.qr").attributes
    qr = one(page, ".qr figure svg.qr-code")
    assert qr.attributes["role"] == "img"
    assert "QR code" in (qr.attributes["aria-label"] or "")
    assert one(page, "form.join").attributes["action"] == f"{night}/join"
    assert one(page, "#name").attributes["maxlength"] == "40"
    live = one(page, "#night-live")
    assert live.attributes["hx-get"] == f"{night}/live?v=1"
    assert "every 1s" in (live.attributes["hx-trigger"] or "")
    assert not page.css("#night-rate"), "only a member rates"


async def test_joining_sets_a_private_cookie_and_escapes_the_name(
    ready_app: TestAppProtocol,
) -> None:
    night = await start_night(ready_app.test_client())
    member = ready_app.test_client()
    response = await member.post(f"{night}/join", form={"name": "  <b>Ana</b>  "})
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and f"Path={night}" in cookie
    assert "Secure" not in cookie
    page = parse(await (await member.get(night)).get_data(as_text=True))
    assert texts(page, ".members li")[0].startswith("<b>Ana</b> (you)")
    assert not page.css(".members b"), "the name is text, never markup"
    assert one(page, ".you strong").text() == "<b>Ana</b>"
    assert page.css("#night-rate #found .film-list li"), "the starter grid to rate from"
    assert "open" not in one(page, "details.qr").attributes, "a member has the QR code folded"

    over_https = ready_app.test_client()
    secure = await over_https.post(f"{night}/join", form={"name": "Ben"}, scheme="https")
    assert "Secure" in secure.headers["Set-Cookie"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 41])
async def test_a_bad_name_is_refused_in_place(ready_app: TestAppProtocol, name: str) -> None:
    client = ready_app.test_client()
    night = await start_night(client)
    response = await client.post(f"{night}/join", form={"name": name})
    assert response.status_code == 400
    page = parse(await response.get_data(as_text=True))
    assert one(page, "#name").attributes["aria-invalid"] == "true"
    assert text_of(one(page, "#join-error"))


async def test_the_group_list_follows_every_members_ratings(ready_app: TestAppProtocol) -> None:
    night = await start_night(ready_app.test_client())
    ana = await join(ready_app, night, "Ana")
    ben = await join(ready_app, night, "Ben")
    before = await ben.get(f"{night}/live?v=3")
    assert before.status_code == 204, "unchanged since both joined"

    await rate(ana, night, "10:5")
    mine = await ana.post(f"{night}/ratings", form={"set": "20:1"}, headers=FRAGMENT)
    assert mine.headers["HX-Trigger"] == "night-changed"
    shown = parse(await mine.get_data(as_text=True))
    assert texts(shown, ".film-title") == ["Toy Story (1995)", "The American President (1995)"]
    await rate(ben, night, "30:4.5")

    changed = await ben.get(f"{night}/live?v=3", headers=FRAGMENT)
    assert changed.status_code == 200
    live = parse(await changed.get_data(as_text=True))
    version = one(live, "#night-live").attributes["data-version"]
    assert (await ben.get(f"{night}/live?v={version}")).status_code == 204
    titles = texts(live, ".group-films .movie-title")
    assert titles, "a list for the group"
    rated = {"Toy Story (1995)", "The American President (1995)", "Heat (1995)"}
    assert not rated & set(titles), "films any member rated never appear"
    matches = texts(live, ".group-films .member-matches")[0]
    assert "Ana" in matches and "Ben" in matches and "%" in matches
    assert texts(live, ".members li") == ["Ana · 2 ratings", "Ben (you) · 1 rating"]


async def test_nobody_changes_another_members_ratings(ready_app: TestAppProtocol) -> None:
    night = await start_night(ready_app.test_client())
    await join(ready_app, night, "Ana")
    stranger = ready_app.test_client()
    refused = await stranger.post(f"{night}/ratings", form={"set": "10:5"}, headers=FRAGMENT)
    assert refused.status_code == 403
    assert refused.headers["HX-Reswap"] == "none"
    page = parse(await (await stranger.get(night)).get_data(as_text=True))
    assert texts(page, ".members li") == ["Ana · 0 ratings"]


async def test_setting_aside_and_picking_show_on_every_page(ready_app: TestAppProtocol) -> None:
    night = await start_night(ready_app.test_client())
    ana = await join(ready_app, night, "Ana")
    ben = await join(ready_app, night, "Ben")
    await rate(ana, night, "10:5")
    first, second = (await live_titles(ben, night))[:2]
    page = parse(await (await ana.get(night)).get_data(as_text=True))
    aside = one(page, ".group-films li:first-child button[name=aside]").attributes["value"]
    pick = one(page, ".group-films li:nth-child(2) button[name=pick]").attributes["value"]

    answer = await ana.post(f"{night}/decide", form={"aside": aside}, headers=FRAGMENT)
    assert answer.status_code == 200
    assert first not in texts(parse(await answer.get_data(as_text=True)), ".movie-title")
    assert first not in await live_titles(ben, night)

    assert (await ana.post(f"{night}/decide", form={"pick": pick})).status_code == 303
    seen = parse(await (await ben.get(night)).get_data(as_text=True))
    assert text_of(one(seen, "#picked-title")) == second
    assert text_of(one(seen, "title")).startswith(f"Tonight: {second.split(' (')[0]}")

    await ben.post(f"{night}/decide", form={}, headers=FRAGMENT)
    assert not parse(await (await ana.get(night)).get_data(as_text=True)).css("#picked-title")


async def test_ratings_can_be_brought_in_removed_and_left(ready_app: TestAppProtocol) -> None:
    night = await start_night(ready_app.test_client())
    ana = await join(ready_app, night, "Ana")
    brought = await ana.post(f"{night}/bring", form={"from_user": "2"})
    assert brought.status_code == 303
    page = parse(await (await ana.get(night)).get_data(as_text=True))
    assert len(page.css("#night-mine .film-list li")) == 3

    linked = await ana.post(f"{night}/bring", form={"link": "http://x/rate?r=10:4,50:3.5"})
    assert linked.status_code == 303
    removed = await ana.post(f"{night}/ratings", form={"remove": "10"}, headers=FRAGMENT)
    assert texts(parse(await removed.get_data(as_text=True)), ".film-title") == ["Babylon 5"]

    for form, field in (({"from_user": "abc"}, "valid user ID"), ({"link": "nonsense"}, "")):
        refused = await ana.post(f"{night}/bring", form=form)
        assert refused.status_code == 400
        page = parse(await refused.get_data(as_text=True))
        assert field in text_of(one(page, ".bring .night-error"))
    unknown = await ana.post(f"{night}/bring", form={"from_user": "999"})
    assert unknown.status_code == 400

    left = await ana.post(f"{night}/leave")
    assert left.status_code == 303
    assert "night_member=;" in left.headers["Set-Cookie"]
    page = parse(await (await ana.get(night)).get_data(as_text=True))
    assert not page.css(".members li") and page.css("form.join")


async def test_an_unknown_night_offers_to_start_one(client: TestClientProtocol) -> None:
    response = await client.get("/nights/no-such-night")
    assert response.status_code == 404
    page = parse(await response.get_data(as_text=True))
    assert one(page, "main form").attributes["action"] == "/nights"
    polled = await client.get("/nights/no-such-night/live?v=3", headers=FRAGMENT)
    assert polled.status_code == 404
    gone = parse(await polled.get_data(as_text=True))
    assert "hx-trigger" not in one(gone, "#night-live").attributes, "polling stops"


@pytest.fixture
async def unreachable(settings: Settings, tiny_zip: Path) -> AsyncIterator[TestAppProtocol]:
    """The tiny app whose database is a PostgreSQL server that is not there."""
    app: Quart = create_app(
        settings.replace(source=str(tiny_zip), database_url="postgresql://u@127.0.0.1:9/none")
    )
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        yield test_app


async def test_without_the_database_night_pages_say_so_and_retry(
    unreachable: TestAppProtocol,
) -> None:
    client = unreachable.test_client()
    response = await client.get("/nights/some-night")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    page = parse(await response.get_data(as_text=True))
    assert one(page, "meta[http-equiv=refresh]").attributes["content"] == "5"
    assert "unavailable" in text_of(one(page, "h1"))
    polled = await client.get("/nights/some-night/live?v=3", headers=FRAGMENT)
    assert polled.status_code == 503
    live = one(parse(await polled.get_data(as_text=True)), "#night-live")
    assert live.attributes["hx-get"] == "/nights/some-night/live?v=0", "keeps polling"
    assert (await client.post("/nights")).status_code == 503
    assert (await client.get("/rate")).status_code == 200, "the rest of the site works"


@pytest.fixture
async def strict(settings: Settings, tiny_zip: Path) -> AsyncIterator[TestAppProtocol]:
    """The tiny app that lets one address start two nights an hour."""
    app: Quart = create_app(settings.replace(source=str(tiny_zip), night_create_limit=2))
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        yield test_app


async def test_starting_too_many_nights_is_refused_with_a_page(strict: TestAppProtocol) -> None:
    client = strict.test_client()
    for _ in range(2):
        await start_night(client)
    refused = await client.post("/nights")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    page = parse(await refused.get_data(as_text=True))
    assert texts(page, "main p")[0].startswith("At most 2 movie nights")


async def test_before_the_model_the_page_waits_and_the_list_keeps_polling(
    settings: Settings,
) -> None:
    app = create_app(settings)  # its source is missing: no model, ever
    async with app.test_app() as test_app:
        await wait_until_settled(app)
        client = test_app.test_client()
        night = await start_night(client)
        page = await client.get(night)
        assert page.status_code == 503
        # The site's status card, as every page shows it (here: the dataset is missing).
        assert one(parse(await page.get_data(as_text=True)), "#app.status--failed")
        assert (await client.get(f"{night}/live?v=1")).status_code == 204, "no model needed"
        polled = await client.get(f"{night}/live?v=0", headers=FRAGMENT)
        assert polled.status_code == 503
        live = one(parse(await polled.get_data(as_text=True)), "#night-live")
        assert live.attributes["hx-get"] == f"{night}/live?v=0", "keeps polling"
