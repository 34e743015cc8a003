"""What a test left behind after its engine removed its containers.

Everything is recognised by name, never by novelty: the runtime's root,
its helper processes and the cgroup trees are shared with whatever else
runs on the machine, and only what names the test is the test's. Names
are the test's token (in podman's container names and ctr's ids, hence in
conmon's and the shims' command lines) and the full container ids (in the
runtime's state files, cgroup paths, and the command lines of conmon and
runsc-py's sandbox and gofer).
"""

import os
import signal
import time
from dataclasses import dataclass

from tests.support import leaks


@dataclass(frozen=True)
class Leaks:
    descriptions: list
    # the test's leftover processes: named by it, or in its containers' cgroups
    pids: list
    # its containers' leftover cgroup directories
    cgroups: list


def find_leaks(root: str, token: str, ids, engine_dirs) -> Leaks:
    """Every leftover of the test: runtime state, processes, cgroups, mounts."""
    names = (token, *ids)
    found = [f"runtime state {os.path.join(root, entry)}"
             for entry in sorted(_entries(root)) if any(n in entry for n in names)]
    processes = {}
    for name in names:
        for line in leaks.leaked_processes(name):
            # each described as "process PID...: CMDLINE"
            processes.setdefault(int(line.split()[1].rstrip(":")), line)
    # each described as "cgroup PATH"
    cgroups = [line.split(" ", 1)[1] for cid in ids for line in leaks.leaked_cgroups(cid)]
    for cgroup in cgroups:
        for pid in _members(cgroup):
            processes.setdefault(pid, f"process {pid} in {cgroup}: {_cmdline(pid)}")
    found += processes.values()
    found += [f"cgroup {c}" for c in cgroups]
    found += leaks.leaked_mounts(engine_dirs)
    return Leaks(found, list(processes), cgroups)


def release(found: Leaks, timeout=10):
    """SIGKILL the test's leftover processes, then remove its leftover
    cgroups, deepest first (the kernel removes a cgroup only once its
    members are gone: bounded retries)."""
    for pid in found.pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for cgroup in sorted(found.cgroups, key=len, reverse=True):
        for dirpath, _dirs, _files in os.walk(cgroup, topdown=False):
            while not _rmdir(dirpath) and time.monotonic() < deadline:
                time.sleep(0.05)


def _rmdir(path) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def lasting_leaks(find, grace: float) -> Leaks:
    """What `find` still reports after up to `grace` seconds, re-checked
    with backoff: a removed container's conmon or shim exits on its own
    shortly after the engine returns."""
    deadline = time.monotonic() + grace
    delay = 0.01
    while True:
        found = find()
        if not found.descriptions or time.monotonic() > deadline:
            return found
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _entries(root: str) -> list:
    try:
        return os.listdir(root)
    except FileNotFoundError:
        return []


def _members(cgroup: str) -> list:
    try:
        with open(os.path.join(cgroup, "cgroup.procs")) as f:
            return [int(p) for p in f.read().split()]
    except OSError:  # removed meanwhile
        return []


def _cmdline(pid) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
