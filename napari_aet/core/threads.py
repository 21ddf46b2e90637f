"""How many CPU threads the stages use: the CPUs this process may actually run on.

torch 2.13 takes its default thread count from the machine, not from what the process was
given: in a container with a CPU quota (``docker --cpus 2``, a Kubernetes limit, a cgroup
``cpu.max``) on a 64-core host it starts 32 threads that share two CPUs' time, and every
parallel region waits on threads that are not running. The quota and the affinity mask
(``taskset``, a SLURM cpuset) are read here; the command line caps torch, the FFT workers
(which follow torch's count) and the BLAS and OpenMP pools (threadpoolctl) to them, or sets
the count ``--threads`` asks for. On two cores shared by two runs, one thread each made
GENFIRE twice as fast as two each, and under a 1-CPU quota one thread 1.2x as fast as torch's
two (docs/benchmarks.md, thirty-seventh session).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

_CGROUP = Path("/sys/fs/cgroup")


def _affinity_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _quota(text: str) -> float | None:
    """CPUs granted by a ``cpu.max`` line (``"150000 100000"`` -> 1.5; ``"max 100000"`` or a
    v1 quota of ``-1`` -> None, no quota)."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroups(proc_cgroup: str) -> dict[str, str]:
    """Controller -> this process's cgroup path, from /proc/self/cgroup (``""`` is v2)."""
    out = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                out[controller] = parts[2]
    return out


def _up_from(top: Path, own: str):
    """``top/own`` and every folder above it up to ``top`` (a parent's limit holds below)."""
    folder = top / own.lstrip("/")
    while True:
        yield folder
        if folder == top or top not in folder.parents:
            return
        folder = folder.parent


def folder_cpu_quota(folder: Path | str) -> float | None:
    """CPUs that one cgroup folder's quota grants (v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us /
    cpu.cfs_period_us``), or None without one."""
    folder = Path(folder)
    v2 = _quota(_read(folder / "cpu.max") or "")
    if v2 is not None:
        return v2
    return _quota(f"{_read(folder / 'cpu.cfs_quota_us')} {_read(folder / 'cpu.cfs_period_us')}")


def cgroup_cpu_quota(root: Path | str = _CGROUP, proc_cgroup: str | None = None) -> float | None:
    """CPUs that a cgroup CPU quota grants this process (fractional), or None without one.

    The quotas of the process's own cgroup and of every cgroup above it (a parent's limit holds
    for its children), under cgroup v2 (``root`` and ``root/unified``) and v1 (``root/cpu``,
    ``root/cpu,cpuacct``); the smallest wins. ``proc_cgroup`` is the text of /proc/self/cgroup
    (read when None).
    """
    root = Path(root)
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup")) or ""
    own = _own_cgroups(proc_cgroup)
    tops = []
    if "" in own:  # v2 (or the v2 half of a hybrid set-up, under unified/)
        tops += [(root, own[""]), (root / "unified", own[""])]
    if "cpu" in own:  # v1
        tops += [(root / "cpu", own["cpu"]), (root / "cpu,cpuacct", own["cpu"])]
    quotas = [
        q
        for top, path in tops
        for folder in _up_from(top, path)
        if (q := folder_cpu_quota(folder)) is not None
    ]
    return min(quotas) if quotas else None


def available_cpus(root: Path | str = _CGROUP, proc_cgroup: str | None = None) -> int:
    """CPUs this process may use: its affinity mask (``taskset``, a SLURM cpuset), capped by a
    cgroup CPU quota (rounded down, at least 1). ``os.cpu_count()`` counts the host's."""
    n = _affinity_cpus()
    q = cgroup_cpu_quota(root, proc_cgroup)
    if q is not None:
        n = min(n, max(1, math.floor(q)))
    return n


def current_threads() -> int:
    """The intra-op thread count torch uses now (the FFT workers follow it)."""
    import torch

    return int(torch.get_num_threads())


def set_threads(n: int | None = None, *, only_lower: bool = False) -> int:
    """Use ``n`` threads (default: :func:`available_cpus`) in torch and in the BLAS and OpenMP
    pools; with ``only_lower``, never raise a count that is already lower (the user's
    ``OMP_NUM_THREADS``, or a napari session's own choice). Returns the count now in use."""
    import torch

    if n is None:
        n = available_cpus()
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be at least 1, got {n}")
    if only_lower:
        n = min(n, current_threads())
    if n != current_threads():
        torch.set_num_threads(n)
    from threadpoolctl import threadpool_info, threadpool_limits

    if any(p.get("num_threads", 0) > n for p in threadpool_info()):
        threadpool_limits(limits=n)
    return n
