"""Progress reporting and cancellation shared by every long stage.

A stage takes ``progress`` (``callable(done, total, message)``) and ``cancel`` (a
``threading.Event`` or any callable returning True when the user asked to stop). Widgets hand
in a worker's signals, the CLI a tqdm bar, tests nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressCallback = Callable[[int, int, str], None]


class Cancelled(RuntimeError):
    """Raised inside a stage when its cancel flag was set; no result is produced."""


def is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def check_cancel(cancel: Any, what: str = "the computation") -> None:
    """Raise :class:`Cancelled` if ``cancel`` says stop."""
    if is_cancelled(cancel):
        raise Cancelled(f"{what} was cancelled")


def report(progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    if progress is not None:
        progress(done, total, message)


def prefixed(progress: ProgressCallback | None, prefix: str) -> ProgressCallback | None:
    """``progress`` with ``prefix`` before every message (a stage that repeats a step, e.g. on
    part of the data, says which run the bar is on); None stays None."""
    if progress is None:
        return None

    def run(done: int, total: int, message: str = "") -> None:
        progress(done, total, prefix + message)

    return run
