"""Constrained hardware (postier.bench.limits): CPU split, cgroup v2 discovery, caps."""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from postier.bench.limits import Limits, MemoryCap, find_cgroup2, split_cpus


def test_split_cpus():
    assert split_cpus([0, 1], 1) == ([1], [0], False)
    assert split_cpus([0, 1, 2, 3], 2) == ([2, 3], [0, 1], False)
    assert split_cpus([0, 1], 2) == ([0, 1], [0, 1], True)
    assert split_cpus([0, 1], None) == ([0, 1], [0, 1], True)


def test_plan_checks_its_arguments():
    with pytest.raises(ValueError, match="only 2 CPUs"):
        Limits.plan(3, cpus=[0, 1], cgroup_parent=None)
    with pytest.raises(ValueError, match="expected a size"):
        Limits.plan(1, "lots", cpus=[0, 1], cgroup_parent=None)
    lim = Limits.plan(1, "256M", cpus=[0, 1], cgroup_parent=None)
    assert lim.memory == 256 * 2**20 and lim.server_cpus == [1] and lim.load_cpus == [0]
    assert lim.describe_cpus() == "server on CPU 1, load generator on CPU 0"


def fake_cgroupfs(tmp_path, controllers: str, own: str = "/", subtree: str = ""):
    root = tmp_path / "cg"
    parent = root / own.lstrip("/") if own != "/" else root
    parent.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (parent / "cgroup.controllers").write_text(controllers + "\n")
    (parent / "cgroup.subtree_control").write_text(subtree + "\n")
    proc = tmp_path / "self_cgroup"
    proc.write_text(f"4:memory:/x\n0::{own}\n")
    return str(root), str(proc), str(parent)


def test_find_cgroup2(tmp_path):
    root, proc, parent = fake_cgroupfs(tmp_path, "cpu memory pids")
    assert find_cgroup2((root,), proc) == root
    # a v1 memory controller only (the v2 hierarchy has none): no cgroup2
    root2, proc2, _ = fake_cgroupfs(tmp_path / "b", "hugetlb")
    assert find_cgroup2((root2,), proc2) is None
    # inside a non-root cgroup, the memory controller must be delegated already
    root3, proc3, parent3 = fake_cgroupfs(tmp_path / "c", "memory", own="/svc/x")
    assert find_cgroup2((root3,), proc3) is None
    root4, proc4, parent4 = fake_cgroupfs(tmp_path / "d", "memory", own="/svc/x",
                                          subtree="memory")
    assert find_cgroup2((root4,), proc4) == parent4


def test_cgroup2_cap_writes_memory_max(tmp_path):
    parent = tmp_path / "cg"
    parent.mkdir()
    lim = Limits.plan(1, "64M", cpus=[0, 1], cgroup_parent=str(parent))
    cap = lim.memory_cap("postier")
    assert cap.method == "cgroup2"
    assert open(os.path.join(cap.cgroup, "memory.max")).read() == str(64 * 2**20)
    assert "cgroup v2 memory.max" in cap.describe()
    os.unlink(os.path.join(cap.cgroup, "memory.max"))   # (the kernel's files vanish with it)
    os.unlink(os.path.join(cap.cgroup, "memory.swap.max"))
    cap.close()                                  # removes the directory it made
    assert os.listdir(str(parent)) == []


def test_rlimit_cap_in_a_child():
    lim = Limits.plan(None, "512M", cgroup_parent=None)
    cap = lim.memory_cap("x")
    assert cap.method == "rlimit" and "RLIMIT_AS" in cap.describe()
    p = subprocess.run([sys.executable, "-c",
                        "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"],
                       capture_output=True, text=True, preexec_fn=lim.server_preexec(cap),
                       timeout=60)
    assert int(p.stdout) == 512 * 2**20
    assert resource.getrlimit(resource.RLIMIT_AS)[0] != 512 * 2**20   # not us


def test_no_memory_no_cap():
    assert MemoryCap(None).describe() == "no memory cap"
    assert Limits.plan(None, None, cgroup_parent=None).memory_cap("x").method == "none"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_server_preexec_pins_the_child():
    cpus = sorted(os.sched_getaffinity(0))
    lim = Limits.plan(1, None, cpus=cpus, cgroup_parent=None)
    p = subprocess.run([sys.executable, "-c", "import os; print(sorted(os.sched_getaffinity(0)))"],
                       capture_output=True, text=True, preexec_fn=lim.server_preexec(None),
                       timeout=60)
    assert p.stdout.strip() == str([cpus[-1]])
