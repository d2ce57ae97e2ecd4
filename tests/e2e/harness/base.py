"""Common shape of every harness component."""

from __future__ import annotations

from . import proc as _proc


class Component:
    """``start()``/``stop()``, a context manager, an idempotent ``stop()``.

    Subclasses implement ``_start()`` and ``_stop()`` and list their log files
    in ``log_paths()`` (printed when a test fails while they are alive).
    """

    kind = "component"

    def __init__(self) -> None:
        self.started = False

    # --- to implement
    def _start(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def _stop(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def log_paths(self) -> list[str]:
        return []

    def pids(self) -> list[int]:
        """PIDs this component currently owns (for leak checks)."""
        return []

    # --- shared
    def start(self):
        if self.started:
            return self
        _proc.register_component(self)
        try:
            self._start()
        except BaseException:
            try:
                self._stop()
            finally:
                self.started = False
            raise
        self.started = True
        return self

    def stop(self) -> None:
        """Stop everything this component started. Safe to call repeatedly."""
        try:
            self._stop()
        finally:
            self.started = False
            _proc.unregister_component(self)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tails(self, lines: int = 30) -> str:
        parts = []
        for p in self.log_paths():
            t = _proc.tail(p, lines)
            if t:
                parts.append(f"--- {self.describe()}: {p} (last {lines} lines)\n{t}")
        return "\n".join(parts)

    def describe(self) -> str:
        return self.kind

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
