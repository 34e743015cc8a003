"""The host pids of a container's processes."""

import os

from ..linux.proc import is_alive


def container_pids(container):
    """Every host process of the container, the sandbox included: the
    sandbox's descendants (a pod sandbox's include its members') and,
    when the container has a pid namespace of its own, every process in
    it (processes that `exec` joined in are not the sandbox's children)."""
    sb = container.sandbox
    pid, start = sb.get("pid"), sb.get("startTime")
    if not is_alive(pid, start):
        return []
    try:
        target = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    own_namespace = target != os.readlink("/proc/self/ns/pid")
    children, in_namespace = {}, []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
            if own_namespace and os.readlink(f"/proc/{name}/ns/pid") == target:
                in_namespace.append(int(name))
        except OSError:
            continue
        ppid = int(data[data.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    found, todo = set(in_namespace), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, ()))
    return sorted(found)


def ps_table(pids, ps_args):
    """The host's ps(1) output with `ps_args`, keeping the header and the
    rows of `pids` (what runc prints)."""
    import subprocess
    from ..errors import Failure
    try:
        out = subprocess.run(["ps", *ps_args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise Failure("ps: the ps command is not installed on this host") from None
    if out.returncode != 0:
        raise Failure(f"ps {' '.join(ps_args)}: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise Failure("ps: the output has no PID column")
    column = header.index("PID")
    wanted = set(pids)
    rows = [line for line in lines[1:] if _pid_of(line, column) in wanted]
    return "\n".join([lines[0]] + rows) + "\n"


def _pid_of(line, column):
    fields = line.split()
    try:
        return int(fields[column])
    except (IndexError, ValueError):
        return None


def host_pid(sandbox_pid, inner_pid):
    """The host pid of the sandbox's child that is `inner_pid` in the
    container's pid namespace (NSpid's last field), or None."""
    for task in os.listdir(f"/proc/{sandbox_pid}/task"):
        try:
            with open(f"/proc/{sandbox_pid}/task/{task}/children") as f:
                children = f.read().split()
        except OSError:
            continue
        for child in children:
            try:
                with open(f"/proc/{child}/status") as f:
                    for line in f:
                        if line.startswith("NSpid:"):
                            if int(line.split()[-1]) == inner_pid:
                                return int(child)
                            break
            except OSError:
                continue
    return None
