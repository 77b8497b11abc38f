"""Progress of long phases on stderr: a tqdm bar with its count where the work is counted, a status line with
its duration otherwise.

The library reports through a :class:`Progress`; the default, :data:`QUIET`, prints nothing, so only the
command line (which turns it on when stderr is a terminal, or with ``--progress``) and callers that ask for it
print anything. Status lines and bars are never nested: each phase owns the terminal line while it runs.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


class Progress:
    """Where phases report. ``enabled`` False: silent (the library's default)."""

    def __init__(self, enabled: bool = False, stream: TextIO | None = None):
        self.enabled = bool(enabled)
        self.stream = stream
        self._phase = None  # the bar of the phase now running: bars opened inside it count on it

    @contextmanager
    def phase(self, desc: str, total: int, unit: str = "it") -> Iterator[object]:
        """One bar for a phase made of parts (each method's boxes, each sweep cell): every :meth:`bar` opened
        inside it counts on this bar instead of printing its own, so a phase shows one bar with its whole
        count. Inside another phase: that phase's bar."""
        if not self.enabled:
            yield _NoBar()
            return
        if self._phase is not None:
            yield self._phase
            return
        with self.bar(desc, total, unit) as bar:
            self._phase = bar
            try:
                yield bar
            finally:
                self._phase = None

    def _out(self) -> TextIO:
        return self.stream or sys.stderr

    @contextmanager
    def bar(self, desc: str, total: int, unit: str = "it") -> Iterator[object]:
        """A tqdm bar of ``total`` steps for the phase ``desc`` (``update(n)`` per step done); inside a
        :meth:`phase`, that phase's bar."""
        if self._phase is not None:
            yield self._phase
            return
        if not self.enabled or total <= 0:
            yield _NoBar()
            return
        from tqdm import tqdm

        bar = tqdm(total=total, desc=desc, unit=unit, file=self._out(), dynamic_ncols=True, leave=True)
        try:
            yield bar
        finally:
            bar.close()

    @contextmanager
    def status(self, text: str) -> Iterator[None]:
        """``text ...`` while the phase runs, then its duration on the same line (``failed`` on an error)."""
        if not self.enabled:
            yield
            return
        out = self._out()
        out.write(f"{text} ...")
        out.flush()
        t0 = time.perf_counter()
        try:
            yield
        except BaseException:
            out.write(" failed\n")
            out.flush()
            raise
        out.write(f" {time.perf_counter() - t0:.1f} s\n")
        out.flush()

    def line(self, text: str) -> None:
        """One line of information between phases."""
        if self.enabled:
            out = self._out()
            out.write(text + "\n")
            out.flush()


QUIET = Progress(False)
