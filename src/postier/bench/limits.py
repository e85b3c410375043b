"""Constrained hardware: pin processes to N cores, cap their memory.

    lim = Limits.plan(cores=1, memory="256M")      # picks the CPUs, the cap method
    lim.server_cpus, lim.load_cpus                 # {1}, {0} on a 2-CPU box
    lim.pin_self_to_load()                         # the bench process + generator + sink
    cap = lim.memory_cap("postier")                # MemoryCap; cap.method: cgroup2 | rlimit | none
    cap.apply(pid)                                 # after start: move/limit the PID
    cap.preexec()                                  # or in the child before exec
    cap.close()                                    # remove the cgroup

CPUs: the server under test (postier, or Postfix and every process it
forks) gets the *last* N CPUs this process may use; the load side (this
process, the generator and the sink) gets the others, or shares them when
the box has no more (reported).  Pinning is os.sched_setaffinity of the
started process (its children inherit it) and, for processes already
running (Postfix's master and its children), of every PID of the tree.

Memory: with cgroup v2 and the memory controller available and writable,
a child cgroup `postier-bench-PID-NAME` is made next to ours (or under
the cgroup v2 root when we are in it) with `memory.max` = the cap and
`memory.swap.max` = 0; the server's processes are moved into it (and their
children follow).  Otherwise RLIMIT_AS is set on each process (inherited
by children): a per-process cap on address space, cruder -- a process that
reaches it gets MemoryError/ENOMEM instead of the OOM killer.  The method
used goes into the report.  No cgroup is ever changed but the ones made
here.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

from postier.bench.scenario import parse_size

CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")


def available_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def split_cpus(cpus: list[int], cores: int | None) -> tuple[list[int], list[int], bool]:
    """(server CPUs, load CPUs, shared?) for `cores` server cores out of `cpus`."""
    if not cores or cores >= len(cpus):
        return list(cpus), list(cpus), True
    server = cpus[-cores:]
    load = cpus[:-cores]
    return server, load, False


def _own_cgroup2(proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    try:
        with open(proc_cgroup) as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip() or "/"
    except OSError:
        pass
    return None


def find_cgroup2(roots=CGROUP_ROOTS, proc_cgroup: str = "/proc/self/cgroup") -> str | None:
    """The directory under which a child cgroup with the memory controller
    can be made, or None."""
    own = _own_cgroup2(proc_cgroup)
    if own is None:
        return None
    for root in roots:
        if not os.path.isfile(os.path.join(root, "cgroup.controllers")):
            continue
        parent = os.path.join(root, own.lstrip("/")) if own != "/" else root
        try:
            with open(os.path.join(parent, "cgroup.controllers")) as f:
                if "memory" not in f.read().split():
                    continue
        except OSError:
            continue
        if not os.access(parent, os.W_OK):
            continue
        if own != "/":
            # "no internal processes": a non-root cgroup with processes in it
            # cannot hand the memory controller to children
            try:
                with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                    if "memory" not in f.read().split():
                        continue
            except OSError:
                continue
        return parent
    return None


@dataclass
class MemoryCap:
    limit: int | None                 # bytes; None: no cap
    method: str = "none"              # cgroup2 | rlimit | none
    cgroup: str | None = None
    note: str = ""

    def preexec(self) -> None:
        """In a child before exec (subprocess preexec_fn): RLIMIT_AS."""
        if self.method == "rlimit" and self.limit:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))
        elif self.method == "cgroup2" and self.cgroup:
            with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
                f.write("0")            # "0": the writing process itself

    def apply(self, pid: int) -> None:
        """Put an already running process under the cap."""
        if self.method == "cgroup2" and self.cgroup:
            with open(os.path.join(self.cgroup, "cgroup.procs"), "w") as f:
                f.write(str(pid))
        elif self.method == "rlimit" and self.limit:
            try:
                resource.prlimit(pid, resource.RLIMIT_AS, (self.limit, self.limit))
            except (ProcessLookupError, PermissionError):
                pass

    def peak(self) -> int | None:
        """cgroup2: memory.peak (bytes) when the kernel has it."""
        if self.method != "cgroup2" or not self.cgroup:
            return None
        try:
            with open(os.path.join(self.cgroup, "memory.peak")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def events(self) -> dict[str, int]:
        """cgroup2 memory.events (oom, oom_kill, max ...)."""
        out: dict[str, int] = {}
        if self.method != "cgroup2" or not self.cgroup:
            return out
        try:
            with open(os.path.join(self.cgroup, "memory.events")) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    out[k] = int(v)
        except (OSError, ValueError):
            pass
        return out

    def close(self) -> None:
        if self.method == "cgroup2" and self.cgroup:
            try:
                os.rmdir(self.cgroup)
            except OSError:
                pass
            self.cgroup = None

    def describe(self) -> str:
        if not self.limit:
            return "no memory cap"
        mb = self.limit / 1048576
        if self.method == "cgroup2":
            return f"{mb:.0f} MB cgroup v2 memory.max (all processes together)"
        return f"{mb:.0f} MB RLIMIT_AS (per process; {self.note or 'no cgroup v2 memory controller'})"


@dataclass
class Limits:
    cores: int | None
    memory: int | None
    server_cpus: list[int] = field(default_factory=list)
    load_cpus: list[int] = field(default_factory=list)
    shared: bool = True
    cgroup_parent: str | None = None

    @classmethod
    def plan(cls, cores: int | None = None, memory: str | int | None = None, *,
             cpus: list[int] | None = None, cgroup_parent: str | None | bool = True) -> Limits:
        """`memory`: bytes or a size like "256M".  `cgroup_parent`: True to
        look for cgroup v2, a directory to use, or None/False for RLIMIT_AS."""
        cpus = list(cpus) if cpus is not None else available_cpus()
        if cores is not None and cores < 1:
            raise ValueError("--cores: expected 1 or more")
        if cores is not None and cores > len(cpus):
            raise ValueError(f"--cores {cores}: only {len(cpus)} CPUs available")
        mem = None
        if memory is not None:
            mem = parse_size(memory) if isinstance(memory, str) else int(memory)
            if not mem:
                raise ValueError(f"--memory {memory!r}: expected a size like 256M")
        server, load, shared = split_cpus(cpus, cores)
        parent = find_cgroup2() if cgroup_parent is True else (cgroup_parent or None)
        return cls(cores=cores, memory=mem, server_cpus=server, load_cpus=load, shared=shared,
                   cgroup_parent=parent)  # type: ignore[arg-type]

    def describe_cpus(self) -> str:
        s = f"server on CPU {','.join(map(str, self.server_cpus))}"
        if self.shared:
            return s + " (load generator shares them)"
        return s + f", load generator on CPU {','.join(map(str, self.load_cpus))}"

    def pin_self_to_load(self) -> None:
        if self.cores:
            os.sched_setaffinity(0, self.load_cpus)

    def pin(self, pids) -> None:
        """Pin running processes to the server CPUs."""
        if not self.cores:
            return
        for pid in pids:
            try:
                os.sched_setaffinity(pid, self.server_cpus)
            except (ProcessLookupError, PermissionError, OSError):
                pass

    def server_preexec(self, cap: MemoryCap | None):
        """A preexec_fn for starting a server process under these limits."""
        cpus = list(self.server_cpus) if self.cores else None

        def fn() -> None:
            if cpus:
                os.sched_setaffinity(0, cpus)
            if cap is not None:
                cap.preexec()
        return fn

    def memory_cap(self, name: str) -> MemoryCap:
        if not self.memory:
            return MemoryCap(None)
        if self.cgroup_parent:
            path = os.path.join(self.cgroup_parent, f"postier-bench-{os.getpid()}-{name}")
            try:
                os.makedirs(path, exist_ok=True)
                with open(os.path.join(path, "memory.max"), "w") as f:
                    f.write(str(self.memory))
                try:
                    with open(os.path.join(path, "memory.swap.max"), "w") as f:
                        f.write("0")
                except OSError:
                    pass
                return MemoryCap(self.memory, "cgroup2", path)
            except OSError as e:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
                return MemoryCap(self.memory, "rlimit", note=f"cgroup v2: {e.strerror}")
        return MemoryCap(self.memory, "rlimit")
