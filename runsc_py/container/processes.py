"""The host pids of a container's processes."""

import os

from ..errors import Failure
from ..linux.proc import is_alive


def _sandbox_pid_namespace(container):
    """The pid namespace of the sandbox's children (the container's) as
    /proc/PID/ns/pid names it, asked of the sandbox: not dumpable, it hides
    its /proc/PID/ns from a caller without CAP_SYS_PTRACE on the host
    (rootless)."""
    from .control import request
    fds = []
    request(container, {"op": "namespaces", "names": ["pid_for_children"]}, fds_out=fds)
    try:
        if not fds:
            raise Failure(f'container "{container.cid}": the sandbox did not send its pid namespace')
        return f"pid:[{os.fstat(fds[0]).st_ino}]"
    finally:
        for fd in fds:
            os.close(fd)


def container_pids(container):
    """Every host process of the container, the sandbox included: the
    sandbox's descendants (a pod sandbox's include its members') and,
    when the container has a pid namespace of its own (the sandbox's
    children's), every process in it (processes that `exec` joined in
    are not the sandbox's children)."""
    sb = container.sandbox
    pid, start = sb.get("pid"), sb.get("startTime")
    if not is_alive(pid, start):
        return []
    try:
        target = os.readlink(f"/proc/{pid}/ns/pid_for_children")
    except PermissionError:
        target = _sandbox_pid_namespace(container)
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
        if list(ps_args) != ["-ef"]:
            raise Failure(f"ps {' '.join(ps_args)}: the ps command is not installed on this host "
                          f"(without it only the default format is available)") from None
        return ps_ef_table(pids)
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


def ps_ef_table(pids):
    """`ps -ef`'s table of `pids`, made with psutil: for hosts without
    procps (minimal images, distroless hosts), so that engines' `top` still
    works there."""
    import time

    import psutil
    header = ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")
    rows = [header]
    now = time.time()
    for pid in pids:
        try:
            rows.append(_ps_row(psutil.Process(pid), now))
        except psutil.Error:
            continue  # gone meanwhile
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] + "\n"
                   for row in rows)


def _ps_row(process, now):
    import time
    with process.oneshot():
        started = process.create_time()
        times = process.cpu_times()
        used = times.user + times.system
        # set_proctitle pads the argument area: drop the empty tail.
        command = " ".join(arg for arg in process.cmdline() if arg).strip() or f"[{process.name()}]"
        return (process.username(), str(process.pid), str(process.ppid()),
                str(int(100 * used / max(now - started, 1e-3))),
                time.strftime("%H:%M" if now - started < 86400 else "%b%d", time.localtime(started)),
                (process.terminal() or "?").removeprefix("/dev/"),
                time.strftime("%H:%M:%S", time.gmtime(used)), command)
