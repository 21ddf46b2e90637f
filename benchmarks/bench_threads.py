"""CPU threads when runs share the machine: GENFIRE and the U-Net with torch's own thread count
against the count set by ``napari_aet.core.threads.set_threads``.

The work: GENFIRE (30 iterations, oversampling 2) of a 21-image 128-px series of random
images, then the 3D U-Net (width 16, depth 3, the shipped networks' shape) over a 128^3 volume
in 96-voxel tiles. Each case starts its runs as separate processes at the same moment and
reports the slowest run's seconds per part (median of ``--repeats``):

- one run, torch's default count (the machine's cores); one run, one thread
- two runs at once, torch's default count each; two at once, one thread each (what
  ``--threads 1`` does)
- one run pinned to one CPU (``taskset``, as a SLURM cpuset does): the default count there
- with ``--quota-cgroup DIR`` (a cgroup v1 or v2 folder with a CPU quota, made beforehand as
  root, e.g. ``mkdir /sys/fs/cgroup/cpu/aet; echo 100000 > .../cpu.cfs_quota_us`` for one
  CPU): one run inside it with torch's default, and with the command line's default
  (``set_threads(only_lower=True)``: the quota's CPUs)

Prints a Markdown table. Usage: python benchmarks/bench_threads.py [--repeats 3]
[--quota-cgroup DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time

from _common import machine


def work(threads: int) -> dict:
    import numpy as np
    import torch

    from napari_aet.augment._infer import predict_tiled
    from napari_aet.augment._model import UNet3D
    from napari_aet.core.threads import set_threads
    from napari_aet.recon import genfire

    if threads > 0:
        set_threads(threads)
    elif threads < 0:  # the command line's default
        set_threads(only_lower=True)
    rng = np.random.default_rng(0)
    proj = rng.random((21, 128, 128)).astype(np.float32)
    t = time.perf_counter()
    genfire(proj, np.linspace(-70, 70, 21), iterations=30, support="box", device="cpu")
    t_genfire = time.perf_counter() - t
    model = UNet3D(width=16, depth=3).eval()
    t = time.perf_counter()
    with torch.no_grad():
        predict_tiled(model, rng.random((128, 128, 128)).astype(np.float32), tile_px=96)
    t_unet = time.perf_counter() - t
    return {"threads": torch.get_num_threads(), "genfire": t_genfire, "unet": t_unet}


def case(n_runs: int, threads: int, pin: bool = False, cgroup: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--work", str(threads)]
    if pin:
        cmd = [shutil.which("taskset") or "taskset", "-c", "0", *cmd]
    if cgroup:  # the shell moves itself into the cgroup, then becomes the run
        procs_file = shlex.quote(f"{cgroup}/cgroup.procs")
        cmd = ["sh", "-c", f"echo $$ > {procs_file} && exec {shlex.join(cmd)}"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n_runs)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {k: max(o[k] for o in outs) for k in ("threads", "genfire", "unet")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quota-cgroup", default=None, help="a cgroup folder with a CPU quota")
    ap.add_argument("--work", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.work is not None:
        print(json.dumps(work(args.work)))
        return
    import numpy as np

    cases = [
        ("one run, torch's default", 1, 0, False),
        ("one run, 1 thread", 1, 1, False),
        ("two runs at once, torch's default each", 2, 0, False),
        ("two runs at once, 1 thread each (`--threads 1`)", 2, 1, False),
        ("one run pinned to 1 CPU (taskset), torch's default", 1, 0, True),
    ]
    cases = [(*c, None) for c in cases]
    if args.quota_cgroup:
        from napari_aet.core.threads import folder_cpu_quota

        q = args.quota_cgroup.rstrip("/")
        cpus = folder_cpu_quota(q)
        if cpus is None:
            raise SystemExit(f"{q} sets no CPU quota (cpu.max or cpu.cfs_quota_us)")
        cases += [
            (f"one run under a {cpus:g}-CPU quota, torch's default", 1, 0, False, q),
            (f"one run under a {cpus:g}-CPU quota, the command line's default", 1, -1, False, q),
        ]
    print(f"Machine: {machine()}; median of {args.repeats}, the slowest run of each case\n")
    print("| case | threads per run | GENFIRE [s] | U-Net [s] |")
    print("|---|---:|---:|---:|")
    for name, n_runs, threads, pin, cgroup in cases:
        rows = [case(n_runs, threads, pin, cgroup) for _ in range(args.repeats)]
        g = np.median([r["genfire"] for r in rows])
        u = np.median([r["unet"] for r in rows])
        print(f"| {name} | {rows[0]['threads']} | {g:.1f} | {u:.1f} |", flush=True)


if __name__ == "__main__":
    main()
