"""The leak checker: what a test left behind, named.

A test owns a token (a unique string in its container ids and its temp
directory). Afterwards there must be
- no live process whose cmdline carries the token (sandbox and gofer name
  their container in their title) or whose cgroup path does (a workload
  runs `sleep`, not its container's name; it is found by its cgroup, whose
  default path holds the container id);
- no mount at or under the test's directories;
- no cgroup directory named with the token, in any hierarchy (searched to
  the depth where container cgroups live: `/<parent>/<id>`; tests that set
  linux.cgroupsPath put the token in one of its first two components);
- no file in its runtime root (temp files of killed writers included).

`check` is the library function; the integration tests' `env` fixture
calls it after every test and fails the test naming each leak.
"""

import os

CGROUP_BASE = "/sys/fs/cgroup"
CGROUP_DEPTH = 2


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process exited meanwhile
        return b""


def _state(pid):
    data = _read(f"/proc/{pid}/stat")
    try:
        return data[data.rindex(b")") + 2:].split()[0].decode()
    except (ValueError, IndexError):
        return "X"


def leaked_processes(token):
    """Live processes carrying the token in their cmdline or cgroup path."""
    out = []
    me = os.getpid()
    needle = token.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        cmd = _read(f"/proc/{name}/cmdline")
        if needle in cmd:
            why = "cmdline"
        elif needle in _read(f"/proc/{name}/cgroup"):
            why = "cgroup"
        else:
            continue
        if _state(name) in ("Z", "X", "x"):
            continue  # exited; reaping is the subreaper's business
        text = cmd.replace(b"\0", b" ").decode(errors="replace").strip()
        out.append(f"process {name} (by {why}): {text}")
    return out


def pids_of(lines):
    """The pids named by leaked_processes lines."""
    return [int(line.split()[1]) for line in lines]


def leaked_mounts(paths):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4].replace("\\040", " ")
            if any(mountpoint == p or mountpoint.startswith(p.rstrip("/") + "/") for p in paths):
                out.append(f"mount {mountpoint}")
    return out


def _subdirs(path):
    try:
        with os.scandir(path) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def hierarchies(base=CGROUP_BASE):
    """The cgroup hierarchies: the base itself on a pure cgroup2 host, else
    the hierarchies mounted under it (v1 and hybrid hosts)."""
    if os.path.exists(os.path.join(base, "cgroup.procs")):
        return [base]
    return [p for p in _subdirs(base) if os.path.exists(os.path.join(p, "cgroup.procs"))]


def leaked_cgroups(token, base=CGROUP_BASE, depth=CGROUP_DEPTH):
    """Cgroup directories named with the token, in every hierarchy."""
    out = []
    for top in hierarchies(base):
        level = [top]
        for _ in range(depth):
            below = []
            for d in level:
                for sub in _subdirs(d):
                    if token in os.path.basename(sub):
                        out.append(f"cgroup {sub}")
                    else:
                        below.append(sub)
            level = below
    return out


def leaked_files(root):
    if not os.path.isdir(root):
        return []
    return [f"file {os.path.join(root, n)}" for n in sorted(os.listdir(root))]


def check(token, paths, root):
    """Everything the test leaked, one line each; empty if clean."""
    return (leaked_processes(token) + leaked_mounts(paths) + leaked_cgroups(token)
            + leaked_files(root))


def release(token, paths):
    """After a failed check, leave the machine clean for the next test:
    SIGKILL the token's processes, detach its mounts, remove its cgroups
    (the processes first: a cgroup with members cannot be removed)."""
    import signal
    import subprocess
    import time
    for pid in pids_of(leaked_processes(token)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for line in reversed(leaked_mounts(paths)):
        subprocess.run(["umount", "-l", line.split(" ", 1)[1]], check=False, capture_output=True)
    deadline = time.monotonic() + 5
    for line in sorted(leaked_cgroups(token), key=len, reverse=True):
        path = line.split(" ", 1)[1]
        for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda w: -len(w[0])):
            while True:
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:  # a member still exiting: bounded wait
                        break
                    time.sleep(0.05)
