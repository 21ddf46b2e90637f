"""Check memory before big allocations so that a bad setting fails fast instead of the machine."""

from __future__ import annotations

import os


def available_memory_bytes() -> int:
    """Memory the process can still take: MemAvailable, capped by an address-space limit."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            avail = 8 * 1024**3
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft not in (resource.RLIM_INFINITY, -1):
            avail = min(avail, soft)
    except (ImportError, ValueError, OSError):
        pass
    return int(avail)


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(nbytes: float, what: str, *, fraction: float = 0.8, hint: str = "") -> None:
    """Raise MemoryError if ``nbytes`` exceeds ``fraction`` of the available memory.

    Parameters
    ----------
    nbytes : float
        Estimated peak bytes of the step.
    what : str
        What is being allocated, for the message.
    fraction : float
        Share of the available memory a single step may take.
    hint : str
        What the user can change to make it fit.
    """
    avail = available_memory_bytes()
    if nbytes > fraction * avail:
        msg = (
            f"{what} needs about {format_bytes(nbytes)} but only {format_bytes(avail)} is "
            f"available (a single step may use {fraction:.0%} of it)."
        )
        if hint:
            msg += " " + hint
        raise MemoryError(msg)
