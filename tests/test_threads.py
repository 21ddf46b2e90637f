"""CPU threads: the CPUs a process may use (affinity and cgroup quota), and the count the
command line sets in torch and in the BLAS and OpenMP pools."""

import os

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

from napari_aet.cli import main
from napari_aet.core.threads import (
    available_cpus,
    cgroup_cpu_quota,
    current_threads,
    set_threads,
)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    set_threads(before)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def host_of_64(monkeypatch):
    """A process whose affinity mask holds 64 CPUs."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))


def test_a_cgroup_v2_quota_caps_the_host_cpus(tmp_path, host_of_64):
    _write(tmp_path / "cpu.max", "max 100000\n")  # the root: no limit
    _write(tmp_path / "kubepods" / "pod7" / "cpu.max", "250000 100000\n")  # 2.5 CPUs
    own = "0::/kubepods/pod7\n"
    assert cgroup_cpu_quota(tmp_path, own) == pytest.approx(2.5)
    assert available_cpus(tmp_path, own) == 2  # rounded down: never more threads than CPUs


def test_a_parent_cgroups_limit_holds_for_its_children(tmp_path, host_of_64):
    _write(tmp_path / "slurm" / "cpu.max", "100000 100000\n")  # the job: 1 CPU
    _write(tmp_path / "slurm" / "step_0" / "cpu.max", "800000 100000\n")
    assert cgroup_cpu_quota(tmp_path, "0::/slurm/step_0") == pytest.approx(1.0)
    assert available_cpus(tmp_path, "0::/slurm/step_0") == 1


def test_a_cgroup_v1_quota_and_a_quota_below_one_cpu(tmp_path, host_of_64):
    v1 = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    _write(v1 / "cpu.cfs_quota_us", "50000\n")  # docker --cpus 0.5
    _write(v1 / "cpu.cfs_period_us", "100000\n")
    own = "12:cpu,cpuacct:/docker/abc\n"
    assert cgroup_cpu_quota(tmp_path, own) == pytest.approx(0.5)
    assert available_cpus(tmp_path, own) == 1  # at least one


def test_no_quota_leaves_the_affinity_mask(tmp_path, host_of_64):
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")  # v1: unlimited
    _write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cpu.max", "max 100000\n")
    own = "0::/\n4:cpu:/\n"
    assert cgroup_cpu_quota(tmp_path, own) is None
    assert available_cpus(tmp_path, own) == 64
    assert available_cpus(tmp_path / "absent", "") == 64  # no cgroup file system at all


def test_set_threads_sets_torch_and_the_blas_and_openmp_pools(restore_threads):
    assert set_threads(1) == 1
    assert torch.get_num_threads() == 1 and current_threads() == 1
    assert all(p["num_threads"] == 1 for p in threadpool_info())
    # only_lower never raises a count the user chose lower
    assert set_threads(4, only_lower=True) == 1 and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="at least 1"):
        set_threads(0)


def test_the_threads_option_of_every_command(tmp_path, restore_threads, capsys):
    stack = tmp_path / "series.npy"
    np.save(stack, np.random.default_rng(0).random((3, 8, 8), np.float32))
    assert main(["info", str(stack), "--threads", "1"]) == 0
    assert torch.get_num_threads() == 1
    assert main(["info", str(stack), "--threads", "0"]) == 1
    assert "--threads 0: give at least 1" in capsys.readouterr().err
