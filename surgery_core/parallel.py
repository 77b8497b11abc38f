"""Worker processes for the CPU-bound loops (boxes, quality, demo scene rendering): one place for how they start.

Workers are *spawned*, not forked: the caller may hold torch/CUDA threads that a forked child would inherit
in a broken state. A spawned child normally re-imports the caller's ``__main__`` script first, which runs any
unguarded top-level code again; Streamlit, which installs each page script as ``__main__`` and never takes it
back, makes that the dashboard itself (a worker would start a second app and die). Every function a worker
runs lives in :mod:`surgery_core`, so the children are started while ``__main__`` is a bare module: they
import nothing of the caller's, and a script without the ``if __name__ == "__main__":`` guard is safe too.
"""
from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any

__all__ = ["init_worker", "keep_freed_memory", "resolve_workers", "spawn_map"]

_MAIN_SWAP = threading.Lock()


def resolve_workers(workers: int) -> int:
    """``0`` means one per CPU; anything below 1 otherwise means 1."""
    return (os.cpu_count() or 1) if workers == 0 else max(1, int(workers))


@contextmanager
def _bare_main():
    """Let children be spawned without re-running the caller's ``__main__`` (see the module note)."""
    with _MAIN_SWAP:
        real = sys.modules.get("__main__")
        stub = types.ModuleType("__main__")  # no __file__, __spec__ None: spawn prepares nothing from it
        sys.modules["__main__"] = stub
        try:
            yield
        finally:
            if sys.modules.get("__main__") is stub:  # another thread may have installed its own meanwhile
                if real is None:
                    del sys.modules["__main__"]
                else:
                    sys.modules["__main__"] = real


def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed blocks of up to 64 MiB instead of returning them to the system.

    Each heatmap costs a few megabytes of short-lived OpenCV/numpy buffers; by default glibc maps every
    such block fresh and unmaps it on free, so every map pays the page faults again (about 12 % of a box
    sweep). Meant for worker processes, whose whole life is such a loop; without glibc it does nothing.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def init_worker() -> None:
    """Start-up of every worker: one OpenCV thread (the workers already share the cores), malloc as above."""
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()


def spawn_map(fn: Callable[..., Any], *iterables: Iterable[Any], workers: int,
              on_result: Callable[[int], None] | None = None) -> list[Any]:
    """``[fn(*args) for args in zip(*iterables)]`` over ``workers`` spawned processes, results in order.

    ``fn`` must be an importable module-level function of :mod:`surgery_core`; each worker runs
    :func:`init_worker` first. on_result: called with each result's index as it is collected (progress).
    """
    args = list(zip(*iterables))
    if not args:
        return []
    pool = ProcessPoolExecutor(min(workers, len(args)), mp_context=get_context("spawn"), initializer=init_worker)
    with pool:
        # A spawn pool starts all its processes on the first submit; submitting everything inside the
        # swap also covers Pythons that start them one submit at a time.
        with _bare_main():
            futures = [pool.submit(fn, *a) for a in args]
        out = []
        for i, f in enumerate(futures):
            out.append(f.result())
            if on_result is not None:
                on_result(i)
        return out
