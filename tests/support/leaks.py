"""The leak checker: what a test left behind, named.

A test owns a token (a unique string in its container ids and its temp
directory). Afterwards there must be no live process whose cmdline carries
the token, no mount under the test's directories, no cgroup directory named
with the token, and no file in its runtime root.
"""

import os


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2:].split()[0].decode()
    except (OSError, ValueError):
        return "X"


def leaked_processes(token):
    out = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        cmd = _cmdline(name)
        if token in cmd and _state(name) not in ("Z", "X"):
            out.append(f"process {name}: {cmd}")
    return out


def leaked_mounts(paths):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4]
            if any(mountpoint == p or mountpoint.startswith(p.rstrip("/") + "/") for p in paths):
                out.append(f"mount {mountpoint}")
    return out


def leaked_cgroups(token):
    out = []
    base = "/sys/fs/cgroup"
    if not os.path.isdir(base):
        return out
    for hierarchy in os.listdir(base):
        top = os.path.join(base, hierarchy)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for dirpath, dirnames, _files in os.walk(top):
            for d in dirnames:
                if token in d:
                    out.append(f"cgroup {os.path.join(dirpath, d)}")
            # cgroup trees are shallow; our cgroups live a few levels down
            if dirpath.count("/") - top.count("/") >= 3:
                dirnames[:] = []
    return out


def leaked_files(root):
    if not os.path.isdir(root):
        return []
    return [f"file {os.path.join(root, n)}" for n in sorted(os.listdir(root))]


def check(token, paths, root):
    """Everything the test leaked; empty if clean."""
    return (leaked_processes(token) + leaked_mounts(paths) + leaked_cgroups(token)
            + leaked_files(root))
