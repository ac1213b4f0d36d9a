"""The one backoff rule: doubling pauses from the first, capped."""

import pytest

from app.backoff import Backoff


def test_pauses_double_from_the_first_up_to_the_most() -> None:
    backoff = Backoff(first=0.5, most=3.0)
    assert [backoff.pause(n) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("failures", [0, -1])
def test_no_pause_before_any_failure(failures: int) -> None:
    assert Backoff(first=5.0).pause(failures) == 0.0


def test_without_a_cap_the_pause_keeps_doubling() -> None:
    assert Backoff(first=1.0).pause(11) == 1024.0
