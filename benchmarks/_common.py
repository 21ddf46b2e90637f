"""Shared helpers of the benchmark scripts."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """CPU model and core count, for the tables in docs/benchmarks.md."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"
