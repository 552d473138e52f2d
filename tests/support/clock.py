"""A clock that moves only when a test tells it to: the one clock of every time rule (open_backend(clock=...))."""

from __future__ import annotations

from datetime import datetime, timedelta

from sayiir_server.domain.model import utc_now


class FakeClock:
    """Starts at the real now (so wall-clock builders stay meaningful) and then stands still."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start if start is not None else utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: float | timedelta) -> None:
        """Move forward by seconds (or a timedelta)."""
        self.now += by if isinstance(by, timedelta) else timedelta(seconds=by)
