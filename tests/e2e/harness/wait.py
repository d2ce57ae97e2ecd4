"""Polling helpers."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

__all__ = ["wait_until", "WaitTimeout"]


class WaitTimeout(AssertionError):
    """The predicate did not become true in time (an AssertionError, so a
    test that waits for a condition fails rather than errors)."""


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05,
               message: str | None = None, ignore_exceptions: bool = False) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Raises :class:`WaitTimeout` after ``timeout`` seconds, mentioning the last
    value (or exception when ``ignore_exceptions``).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = predicate()
            if last:
                return last  # type: ignore[return-value]
        except Exception as e:  # noqa: BLE001
            if not ignore_exceptions:
                raise
            last = e
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", "condition")
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
