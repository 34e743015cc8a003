"""The host pids of a container's processes."""

import os

from ..linux.proc import is_alive


def container_pids(container):
    """Every host process in the sandbox's pid namespace (the sandbox
    included), found by comparing /proc/PID/ns/pid links."""
    sb = container.sandbox
    pid, start = sb.get("pid"), sb.get("startTime")
    if not is_alive(pid, start):
        return []
    try:
        target = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    if target == os.readlink("/proc/self/ns/pid"):
        return _descendants(pid)  # no pid namespace of its own: the sandbox's tree only
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{name}/ns/pid") == target:
                pids.append(int(name))
        except OSError:
            continue
    return pids


def _descendants(root_pid):
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out
