"""The emulated clock: real elapsed time scaled by a speed factor, plus test jumps."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from ._util import ms_to_datetime

__all__ = ["EmulatedClock"]


class EmulatedClock:
    """Emulated wall clock in epoch milliseconds.

    ``now = start + real_elapsed * speed + advanced``. ``speed=0`` freezes time so
    only :meth:`advance` moves it, which makes lifecycle tests fully deterministic.
    """

    def __init__(
        self,
        start_ms: int,
        speed: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self._start_ms = start_ms
        self._speed = speed
        self._monotonic = monotonic
        self._t0 = monotonic()
        self._advanced_ms = 0

    @property
    def speed(self) -> float:
        """Emulated seconds per real second (0 means frozen)."""
        return self._speed

    def now_ms(self) -> int:
        """Current emulated time in epoch milliseconds."""
        elapsed = (self._monotonic() - self._t0) * self._speed
        return self._start_ms + self._advanced_ms + int(elapsed * 1000)

    def now(self) -> datetime:
        """Current emulated time as an aware UTC datetime."""
        return ms_to_datetime(self.now_ms())

    def advance(self, seconds: float) -> None:
        """Jump emulated time forward. Raises ValueError for negative jumps."""
        if seconds < 0:
            raise ValueError("the emulated clock cannot go backwards")
        self._advanced_ms += round(seconds * 1000)

    def to_real_seconds(self, emulated_seconds: float) -> float:
        """Real seconds a wait of ``emulated_seconds`` takes; a frozen clock waits unscaled."""
        if self._speed <= 0:
            return emulated_seconds
        return emulated_seconds / self._speed
