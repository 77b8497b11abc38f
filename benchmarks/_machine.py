"""The machine line every benchmark prints with its figures: CPU model, cores (usable by this process / online),
memory, the GPU when one is visible, and the load average (1, 5, 15 min) at the moment it is printed.

Figures from a shared machine are noisy: print :func:`machine_line` before timing and :func:`load_line` after, so
that every table says what it was measured on and how busy the machine was::

    from _machine import machine_line, load_line       # benchmarks/ is on sys.path when a script there runs
    print(machine_line())
    ...
    print(load_line())

Standard library only (torch is asked about a GPU only when the caller has already imported it).
"""

from __future__ import annotations

import os
import platform
import sys


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cores() -> str:
    """Cores this process may run on, and the machine's online count when they differ (a cgroup or taskset)."""
    online = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = online
    return f"{usable} cores" if usable == online else f"{usable} of {online} cores"


def memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        return f"{kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        return "RAM unknown"


def gpu() -> str | None:
    """The CUDA device's name when torch is already imported and sees one; None otherwise."""
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_available():
            return f"GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # noqa: BLE001  (a broken driver must not stop a CPU benchmark)
        return None
    return None


def load_line() -> str:
    """``load average 1.23 0.98 0.80 (1/5/15 min) on 2 cores`` at this moment."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def machine_line() -> str:
    """``machine: AMD EPYC, 2 cores, 24 GiB RAM, Linux 6.1 x86_64, Python 3.11.2; load average ...``."""
    parts = [cpu_model(), cores(), memory(), f"{platform.system()} {platform.release()} {platform.machine()}",
             f"Python {platform.python_version()}"]
    if (g := gpu()) is not None:
        parts.append(g)
    return "machine: " + ", ".join(parts) + "; " + load_line()


if __name__ == "__main__":
    print(machine_line())
