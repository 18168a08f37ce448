"""Progress of a long job (calibration, adaptation) as the fraction of its units of work done."""

from __future__ import annotations

from collections.abc import Callable


class WorkProgress:
    """Reports the fraction of `total` units done to `callback(fraction, message)`, when there is one."""

    def __init__(self, total: int, callback: Callable[[float, str], None] | None) -> None:
        self.total, self.done, self.callback = total, 0, callback

    def advance(self, message: str, units: int = 1) -> None:
        self.done += units
        if self.callback is not None:
            self.callback(min(self.done / self.total, 1.0), message)

    def finish(self, message: str) -> None:
        self.done = self.total
        if self.callback is not None:
            self.callback(1.0, message)
