"""A swapped-out model is released: no cycle keeps a catalogue, nothing frozen keeps a model."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pandas as pd
import pytest

from app.data.catalogue import Catalogue
from app.engine.freezer import Freezer


@pytest.fixture
def collector_off() -> Iterator[None]:
    """The cyclic collector off, so that only reference counting frees anything."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Whatever a test freezes is unfrozen after it."""
    try:
        yield
    finally:
        gc.unfreeze()


class Held:
    """A stand-in for a model that sits in a reference cycle, as any part of one might."""

    def __init__(self) -> None:
        self.me = self


def test_a_catalogue_that_decoded_films_is_freed_without_the_cyclic_collector(
    collector_off: None,
) -> None:
    movies = pd.DataFrame(
        {"title": ["Heat (1995)"], "year": [1995], "genres": ["Crime"]},
        index=pd.Index([30], name="movie_id"),
    )
    catalogue = Catalogue.from_frame(movies)
    heat = catalogue.get(30)
    assert heat is not None and heat.title == "Heat (1995)"
    gone = weakref.ref(catalogue)
    del catalogue
    assert gone() is None


async def test_nothing_is_frozen_while_the_replaced_model_lives(unfrozen: None) -> None:
    freezer = Freezer()
    replaced = Held()
    gone = weakref.ref(replaced)
    freezer.swapped(replaced)
    await asyncio.sleep(0.1)
    assert gc.get_freeze_count() == 0
    del replaced  # a cycle: only a collection frees it
    async with asyncio.timeout(5):
        while gc.get_freeze_count() == 0:
            await asyncio.sleep(0.02)
    assert gone() is None


async def test_the_first_model_is_frozen_at_once(unfrozen: None) -> None:
    Freezer().swapped(None)
    assert gc.get_freeze_count() > 0


async def test_a_newer_swap_waits_for_its_own_replaced_model(unfrozen: None) -> None:
    freezer = Freezer()
    first, second = Held(), Held()
    freezer.swapped(first)
    freezer.swapped(second)
    del first
    await asyncio.sleep(0.2)
    assert gc.get_freeze_count() == 0, "froze while the second replaced model lives"
    await freezer.stop()
    del second
