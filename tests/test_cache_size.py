"""The answer cache's byte count is what its entries keep alive, measured, not guessed."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

from app.config import Settings
from app.engine import Recommendations, Service
from app.engine.cache import deep_size

# A star outside Latin-1 makes CPython store the whole string at 2 bytes a character, as the
# results fragment's stars and arrows do: counting characters would miss half of it.
STAR = "\u2605"


def present(answer: Recommendations) -> str:
    """HTML-like text of about the fragment's size per film, with a star in it."""
    return "".join(
        f'<li data-id="{movie.movie_id}">{movie.title} {STAR} {movie.score:.3f}</li>' * 60
        for movie in answer.movies
    )


async def test_the_byte_count_matches_what_the_entries_keep_alive(
    settings: Settings, tiny_zip: Path
) -> None:
    service = Service(
        settings.replace(source=str(tiny_zip), result_cache=10_000, result_cache_bytes=1 << 30),
        present=present,
    )
    service.start()
    await service.loaded()

    async def fill(k: int) -> None:
        for user_id in (1, 2, 3, 4):
            for n in range(1, 7):
                await service.recommend(user_id, n=n, k=k, presented=True)
                await service.recommend_for_ratings([(10, 4.5), (30, n / 2)], n=n, k=k)

    await fill(k=1)  # what the first answers leave behind for good (decoded films)
    gc.collect()
    counted_before = service.cache_info().bytes
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(2, 12):
            await fill(k)
        gc.collect()
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    counted = service.cache_info().bytes - counted_before
    assert service.cache_info().entries > 300
    # Never less than what is held; a little more for objects shared with the catalogue.
    assert measured <= counted <= 1.3 * measured, (measured, counted)
    await service.stop()


def test_a_string_counts_at_its_width_and_a_shared_object_once() -> None:
    latin = "x" * 1000
    wide = STAR * 1000
    assert deep_size(wide) > 1.9 * deep_size(latin)
    assert deep_size((latin, latin)) == deep_size((latin,)) + 8
