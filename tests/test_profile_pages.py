"""The saved profile's pages: save from /rate, the private page, forget, 404, headers, log.

Editing a saved profile, on SQLite and PostgreSQL, is tests/test_profiles_editing.py.
"""

from __future__ import annotations

import logging

import pytest
from quart.typing import TestClientProtocol as Client

from tests.conftest import one, parse, text_of, texts


async def _save(client: Client, ratings: str) -> str:
    response = await client.post("/me", form={"r": ratings})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/me/")
    return location


async def test_rate_offers_to_save_and_the_profile_page_lists_the_ratings(
    client: Client,
) -> None:
    rate = parse(await (await client.get("/rate?r=10:4,20:3.5")).get_data(as_text=True))
    save = rate.css_first("form.save-profile")
    assert save is not None and save.attributes["action"] == "/me"
    hidden = save.css_first("input[name=r]")
    assert hidden is not None and hidden.attributes["value"] == "10:4,20:3.5"
    location = await _save(client, "10:4,20:3.5")
    page = await client.get(location)
    assert page.status_code == 200
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    tree = parse(await page.get_data(as_text=True))
    assert text_of(one(tree, "h1")) == "Your saved profile"
    assert texts(tree, "ul[aria-label='Films you rated'] .film-title") == [
        "Toy Story (1995)",
        "The American President (1995)",
    ]
    # The page is the rating page: search, settings, import, Forget me; no Save, no user.
    assert one(tree, "#q").attributes["hx-post"] == "/rate/search"
    assert one(tree, "#import").attributes["action"] == location
    assert one(tree, "#rate-state").attributes["action"] == location
    assert not tree.css("form.save-profile") and not tree.css("#from_user")
    assert one(tree, "form[action$='/forget'] button").text(strip=True) == "Forget me"


async def test_every_list_on_rate_can_be_saved_and_an_import_says_so(client: Client) -> None:
    # A list too long for an address is offered too: tests/test_profiles_editing.py.
    pairs = "10:4,20:4,30:4,40:4,50:4"
    posted = parse(await (await client.post("/rate", form={"r": pairs})).get_data(as_text=True))
    assert one(posted, "form.save-profile input[name=r]").attributes["value"] == pairs
    nothing = parse(await (await client.get("/rate")).get_data(as_text=True))
    assert not nothing.css("form.save-profile")
    imported = await client.post(
        "/rate", form={"import": "1", "r": "20:3", "paste": "movieId,rating\r\n30,5\r\n"}
    )
    page = parse(await imported.get_data(as_text=True))
    offer = one(page, ".save-offer")
    assert "saved behind a private link" in text_of(offer)
    assert one(offer, "input[name=r]").attributes["value"] == "20:3,30:5"
    assert len(page.css("form.save-profile")) == 1


async def test_forget_me_needs_confirming_then_the_link_is_gone(
    client: Client,
) -> None:
    location = await _save(client, "10:4")
    unconfirmed = await client.post(f"{location}/forget", form={})
    assert unconfirmed.status_code == 400
    assert (await client.get(location)).status_code == 200
    gone = await client.post(f"{location}/forget", form={"confirm": "yes"})
    assert gone.status_code == 200
    heading = parse(await gone.get_data(as_text=True)).css_first("h1")
    assert heading is not None and heading.text(strip=True) == "Your profile is gone"
    after = await client.get(location)
    assert after.status_code == 404
    assert after.headers["Cache-Control"] == "no-store"
    links = parse(await after.get_data(as_text=True)).css("main a")
    assert "/rate" in [link.attributes.get("href") for link in links]


async def test_bad_ratings_are_refused_with_a_message(client: Client) -> None:
    response = await client.post("/me", form={"r": "999999:4"})
    assert response.status_code == 400
    assert "Traceback" not in await response.get_data(as_text=True)
    too_many = ",".join(f"{film}:4" for film in range(1, 10_002))
    response = await client.post("/me", form={"r": too_many})
    assert response.status_code == 400
    assert "At most 10000 ratings" in await response.get_data(as_text=True)


async def test_the_access_log_never_shows_the_token(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    location = await _save(client, "10:4")
    token = location.removeprefix("/me/")
    with caplog.at_level(logging.INFO):
        await client.get(location)
    assert caplog.records
    assert all(token not in record.getMessage() for record in caplog.records)
    assert all(token not in str(getattr(r, "path", "")) for r in caplog.records)
