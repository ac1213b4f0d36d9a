"""The answer cache stays within its bound in bytes, however many entries it may hold."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings
from app.engine import Service


async def test_the_answer_cache_is_bounded_in_bytes(settings: Settings, tiny_zip: Path) -> None:
    limit = 40_000
    service = Service(
        settings.replace(source=str(tiny_zip), result_cache=4096, result_cache_bytes=limit)
    )
    service.start()
    await service.loaded()
    for n in range(1, 6):
        for first in (10, 20, 30, 40, 50):
            await service.recommend_for_ratings([(first, 4.5), (60, 3.0)], n=n, k=2)
    info = service.cache_info()
    assert 0 < info.bytes <= limit and info.max_bytes == limit
    assert info.entries < 25  # some were let go to stay within the bytes
    await service.stop()


async def test_an_answer_cache_of_size_zero_keeps_nothing(
    settings: Settings, tiny_zip: Path
) -> None:
    service = Service(settings.replace(source=str(tiny_zip), result_cache=0))
    service.start()
    await service.loaded()
    first = await service.recommend(1, n=3, k=2)
    again = await service.recommend(1, n=3, k=2)
    await service.recommend_for_ratings([(10, 4.5), (60, 3.0)], n=3, k=2)
    info = service.cache_info()
    assert first.value == again.value
    assert (info.entries, info.bytes, info.hits) == (0, 0, 0)
    await service.stop()
