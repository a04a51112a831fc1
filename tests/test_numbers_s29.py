"""Numbers handled alike across the public API (session 29), after session 28's numpy numbers
(tests/test_numbers_s28.py): a claim wait's ``owner_limit`` given as ``np.int64(2)`` is in the herd of the
waits with ``owner_limit=2`` (it made a herd of its own: every notification woke each such wait)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from musicstore import waiting
from musicstore.waiting import hub as listening
from musicstore.waiting.herds import Herds

# --- owner_limit as a numpy integer: the herd of the plain int -------------------------------------------


@pytest.mark.parametrize("limit", [np.int64(2), np.int32(2), np.uint8(2)])
def test_a_numpy_owner_limit_is_in_the_herd_of_the_plain_int(limit: Any) -> None:
    assert waiting.claiming({"owner_limit": limit}) == waiting.claiming({"owner_limit": 2})
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({"owner_limit": 3})
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({})


def test_a_notification_wakes_one_of_the_waits_with_a_numpy_owner_limit() -> None:
    """Ten claim waits with ``owner_limit=np.int64(2)``, armed: a notification wakes one of them, as it
    wakes one of ten with ``owner_limit=2`` (it woke all ten)."""
    herds = Herds()
    waits = [listening._ThreadWaiter(waiting.claiming({"owner_limit": np.int64(2)})) for _ in range(10)]
    for wait in waits:
        herds.add(wait)
        herds.armed(wait)
    assert len(herds.wake(waiting.PENDING, "")) == 1


@pytest.mark.parametrize("limit", [True, 2.0, "2", -1.5])
def test_an_owner_limit_the_claim_refuses_still_makes_a_herd_of_its_own(limit: Any) -> None:
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({"owner_limit": 2})
    assert waiting.claiming({"owner_limit": limit}) != waiting.claiming({"owner_limit": limit})
