"""Hostile bundles, beyond test_hostile.py: each case is a real CVE class,
and each is checked against what the kernel shows (the sandbox's
mountinfo, the host's files and mounts, /proc of the processes), not
against the runtime's own idea of what it did.

- symlink-exchange race on mount destinations during create (CVE-2021-30465)
- `..` in mount destinations, /dev entries that are symlinks to host paths
- /proc, /sys, /dev replaced by symlinks: every reachable proc and sysfs
  mount keeps its masked and read-only paths (CVE-2019-19921); a /proc
  that leads into a volume never receives the process's settings or the
  container's sysctls (CVE-2019-16884)
- the runtime's own binary and memory out of reach: the process `exec`
  forks is not dumpable until it execs; `#!/proc/self/exe` (CVE-2019-5736)
- no runtime fd, host cwd or host directory fd reaches a process
  (CVE-2024-21626), for the workload and for exec'd processes
- container ids with `/` or `..` for every command
"""

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import threading

import pytest

from tests.support.busybox import read_config, write_config
from tests.support.runtime import assert_one_line_error, wait_until


def host_mounts_at(paths):
    """How many host mounts sit exactly on each of `paths`."""
    counts = dict.fromkeys(paths, 0)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mountpoint = line.split()[4]
            if mountpoint in counts:
                counts[mountpoint] += 1
    return counts


WATCHED = ["/", "/tmp", "/proc", "/sys", "/dev", "/etc", "/mnt", "/var"]


class HostWatch:
    """The host's top-level names, its mounts on the usual targets and
    directories of the test (but for the runtime's own root and log): none
    may change because of a container."""

    OWN = {"root", "runtime.log"}

    def __init__(self, *dirs):
        self.dirs = dirs
        self.before = self.snapshot()

    def snapshot(self):
        return (sorted(os.listdir("/")), host_mounts_at(WATCHED),
                {d: sorted(set(os.listdir(d)) - self.OWN) for d in self.dirs})

    def assert_unchanged(self):
        assert self.snapshot() == self.before


# -- what the sandbox's mount namespace holds ----------------------------------------

class Mount:
    def __init__(self, line):
        left, _, right = line.partition(" - ")
        fields = left.split()
        self.id, self.parent = int(fields[0]), int(fields[1])
        self.fsroot = fields[3]  # which directory of its file system the mount shows
        self.point = fields[4].replace("\\040", " ")
        self.options = set(fields[5].split(","))
        self.fstype = right.split()[0]


def reachable_mounts(pid):
    """The mounts a process of the container can reach: not shadowed by a
    later mount on the same point, not stacked on the (fixed) root, and
    under a reachable parent."""
    with open(f"/proc/{pid}/mountinfo") as f:
        mounts = {m.id: m for m in map(Mount, f)}
    shadowed = {m.parent for m in mounts.values()
                if m.parent in mounts and mounts[m.parent].point == m.point}
    root = next(m for m in mounts.values() if m.parent not in mounts)

    def reachable(m):
        if m is root:
            return True
        if m.id in shadowed:
            return False
        if m.parent == root.id and m.point == "/":
            return False  # stacked on the root: path walks start below it
        return m.parent in mounts and reachable(mounts[m.parent])

    return [m for m in mounts.values() if reachable(m)]


def assert_proc_and_sys_confined(pid, config):
    """Every procfs and sysfs the container can reach has the config's
    masked and read-only paths applied (those that exist on this kernel);
    a mount showing only a subtree (the read-only binds of /proc/sys ...)
    is checked for the paths inside that subtree. Returns how many were
    checked."""
    mounts = reachable_mounts(pid)
    at = {m.point: m for m in mounts}
    linux = config["linux"]
    checked = 0

    def place(m, prefix, path):
        """Where `path` of this file system appears through mount m, or None."""
        rel = "/" + path[len(prefix):]
        base = m.fsroot.rstrip("/")
        if rel != base and not rel.startswith(base + "/"):
            return None
        return os.path.normpath(m.point + "/" + rel[len(base):])

    for m in mounts:
        prefix = {"proc": "/proc/", "sysfs": "/sys/"}.get(m.fstype)
        if prefix is None:
            continue
        if m.fstype == "sysfs":
            assert "ro" in m.options, f"sysfs at {m.point} is writable"
        for path in linux["maskedPaths"]:
            if path.startswith(prefix) and os.path.exists(path):
                inside = place(m, prefix, path)
                if inside is not None:
                    assert inside in at, f"{path} is not masked in the {m.fstype} at {m.point}"
                    checked += 1
        for path in linux["readonlyPaths"]:
            if path.startswith(prefix) and os.path.exists(path):
                inside = place(m, prefix, path)
                if inside is not None:
                    assert inside in at and "ro" in at[inside].options, \
                        f"{path} is not read-only in the {m.fstype} at {m.point}"
                    checked += 1
    return checked


def replace_by_symlink(rootfs, name, target):
    path = os.path.join(rootfs, name)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


LAYOUTS = {
    "proc->/tmp": [("proc", "/tmp")],
    "sys->/proc": [("sys", "/proc")],
    "proc->/sys": [("proc", "/sys")],
    "proc->climb": [("proc", "../../../../../..")],
    "proc->/": [("proc", "/")],
    "sys->/": [("sys", "/")],
    "dev->/proc": [("dev", "/proc")],
    "proc->/dev": [("proc", "/dev")],
    "proc<->sys": [("proc", "/sys"), ("sys", "/proc")],  # a loop
}


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
def test_proc_sys_dev_replaced_by_symlinks(env, layout):
    """CVE-2019-16884 / CVE-2019-19921 class: whatever the image's /proc,
    /sys and /dev are, create either fails with one line or builds a
    container in which every reachable procfs and sysfs is masked and
    read-only where the config says, and nothing happens on the host."""
    bundle = env.bundle(["sleep", "1000"])
    rootfs = os.path.join(bundle, "rootfs")
    for name, target in LAYOUTS[layout]:
        replace_by_symlink(rootfs, name, target)
    watch = HostWatch(env.tmp)
    cid = env.cid()
    result = env.rt("create", "--bundle", bundle, cid, check=False)
    if result.returncode != 0:
        assert_one_line_error(result)
    else:
        pid = env.rt.state(cid)["pid"]
        assert_proc_and_sys_confined(pid, read_config(bundle))
        env.rt("delete", "--force", cid)
    watch.assert_unchanged()


def test_confinement_check_sees_the_masks(env):
    """The checker above against a plain container: it must find masks to
    check, or it proves nothing."""
    bundle = env.bundle(["sleep", "1000"])
    cid = env.cid()
    env.rt("create", "--bundle", bundle, cid)
    try:
        assert assert_proc_and_sys_confined(env.rt.state(cid)["pid"], read_config(bundle)) >= 2
    finally:
        env.rt("delete", "--force", cid)


def test_proc_symlink_into_a_volume_gets_no_settings(env):
    """CVE-2019-16884: the image's /proc leads into a volume holding a fake
    /proc/self/oom_score_adj. The process's oomScoreAdj must reach the
    kernel or start must fail; the volume's file is never written."""
    volume = os.path.join(env.tmp, "volume")
    os.makedirs(os.path.join(volume, "self"))
    fake = os.path.join(volume, "self", "oom_score_adj")
    with open(fake, "w") as f:
        f.write("0\n")
    bundle = env.bundle(["sleep", "1000"], oomScoreAdj=500)
    replace_by_symlink(os.path.join(bundle, "rootfs"), "proc", "/vol")
    config = read_config(bundle)
    config["mounts"].append({"destination": "/vol", "type": "bind", "source": volume, "options": ["rbind"]})
    write_config(bundle, config)
    cid = env.cid()
    env.rt("create", "--bundle", bundle, cid)
    started = env.rt("start", cid, check=False)
    if started.returncode == 0:
        from runsc_py.container.processes import container_pids
        from runsc_py.container import load
        pids = container_pids(load(env.root, cid))
        workload = [p for p in pids if p != env.rt.state(cid)["pid"]]
        assert workload and all(open(f"/proc/{p}/oom_score_adj").read().strip() == "500" for p in workload)
    else:
        assert_one_line_error(started)
    assert open(fake).read() == "0\n"
    env.rt("delete", "--force", cid)


def test_proc_symlink_into_a_volume_gets_no_sysctls(env):
    """The same for linux.sysctl, written by the sandbox after pivot_root:
    the value must reach the kernel or create must fail; nothing is written
    (or created) in the volume."""
    volume = os.path.join(env.tmp, "volume")
    os.makedirs(os.path.join(volume, "sys", "net", "ipv4"))
    bundle = env.bundle(["cat", "/proc/sys/net/ipv4/ip_forward"])
    replace_by_symlink(os.path.join(bundle, "rootfs"), "proc", "/vol")
    config = read_config(bundle)
    config["mounts"].append({"destination": "/vol", "type": "bind", "source": volume, "options": ["rbind"]})
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    write_config(bundle, config)
    result = env.rt("run", "--bundle", bundle, env.cid(), check=False)
    if result.returncode != 0:
        assert_one_line_error(result, "linux.sysctl net.ipv4.ip_forward")
    assert os.listdir(os.path.join(volume, "sys", "net", "ipv4")) == []


# -- mount destinations ------------------------------------------------------------------

RENAME_EXCHANGE = 2


def exchange(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), a)


def test_symlink_exchange_race_during_create(env):
    """CVE-2021-30465 class: while creates run, a directory on the way to
    mount destinations is swapped, as fast as the kernel allows, with a
    symlink to `/` or to a host directory. Mounts and directories may land
    anywhere inside the rootfs, never on the host."""
    token = env.token
    host_target = os.path.join(env.tmp, "host-target")
    source = os.path.join(env.tmp, "source")
    os.makedirs(host_target)
    os.makedirs(source)
    bundle = env.bundle(["sleep", "1000"])
    mnt = os.path.join(bundle, "rootfs", "mnt")
    os.makedirs(os.path.join(mnt, "a"))
    os.symlink(host_target, os.path.join(mnt, "to-host"))
    os.makedirs(os.path.join(mnt, "c"))
    os.symlink("/", os.path.join(mnt, "to-root"))
    config = read_config(bundle)
    config["mounts"] += [
        {"destination": f"/mnt/a/{token}-tmpfs/x", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/mnt/a/{token}-bind", "type": "bind", "source": source, "options": ["rbind"]},
        {"destination": f"/mnt/c/{token}-root/y", "type": "tmpfs", "source": "tmpfs"},
    ]
    write_config(bundle, config)
    watch = HostWatch(env.tmp, host_target, source)
    stop = threading.Event()
    swaps = [0]

    def swapper():
        pairs = [(os.path.join(mnt, "a"), os.path.join(mnt, "to-host")),
                 (os.path.join(mnt, "c"), os.path.join(mnt, "to-root"))]
        while not stop.is_set():
            for a, b in pairs:
                exchange(a, b)
                swaps[0] += 1

    thread = threading.Thread(target=swapper)
    thread.start()
    outcomes = []
    try:
        for i in range(12):
            cid = env.cid(f"x{i}")
            result = env.rt("create", "--bundle", bundle, cid, check=False)
            outcomes.append(result.returncode)
            if result.returncode == 0:
                env.rt("delete", "--force", cid)
            else:
                assert_one_line_error(result)
            watch.assert_unchanged()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert swaps[0] > 1000, "the race did not run"
    assert outcomes.count(0) >= 1, "no create got through the race: nothing was checked"
    assert not any(name.startswith(token) for name in os.listdir("/"))
    assert os.listdir(host_target) == [] and os.listdir(source) == []


def test_dotdot_in_mount_destinations_stays_inside(env):
    token = env.token
    source = os.path.join(env.tmp, "source")
    os.makedirs(source)
    open(os.path.join(source, "marker"), "w").close()
    bundle = env.bundle(["sh", "-c", f"ls -d /{token}-* | tr '\\n' ' '; ls /{token}-bind"])
    config = read_config(bundle)
    config["mounts"] += [
        {"destination": f"/../../../{token}-up", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/proc/../../../{token}-viaproc", "type": "tmpfs", "source": "tmpfs"},
        {"destination": f"/dev/../../{token}-bind", "type": "bind", "source": source, "options": ["rbind"]},
        {"destination": f"../../{token}-relative", "type": "tmpfs", "source": "tmpfs"},
    ]
    write_config(bundle, config)
    watch = HostWatch(env.tmp, source)
    out = env.rt("run", "--bundle", bundle, env.cid()).stdout.split()
    assert sorted(out[:4]) == sorted(f"/{token}-{n}" for n in ("up", "viaproc", "bind", "relative"))
    assert out[4:] == ["marker"]  # the bind mount is there, at the clamped place
    watch.assert_unchanged()
    assert not any(name.startswith(token) for name in os.listdir("/"))


def test_dev_entries_symlinked_to_host_paths(env):
    """Without a /dev mount the image's /dev is used: its symlinks to host
    devices and host files (absolute, climbing, to a device of
    linux.devices) are replaced by real device nodes inside."""
    host_file = os.path.join(env.tmp, "host-file")
    with open(host_file, "w") as f:
        f.write("host\n")
    host_dev = os.path.join(env.tmp, "host-dev")
    bundle = env.bundle(["sh", "-c", "echo data > /dev/zero; echo data > /dev/full 2>/dev/null; "
                                     "ls -lL /dev/null /dev/zero /dev/random /dev/full /dev/fuse-x | cut -c1"])
    rootfs = os.path.join(bundle, "rootfs")
    config = read_config(bundle)
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    config["linux"]["devices"] = [{"path": "/dev/fuse-x", "type": "c", "major": 10, "minor": 229}]
    write_config(bundle, config)
    os.symlink("/dev/sda", os.path.join(rootfs, "dev", "null"))
    os.symlink(host_file, os.path.join(rootfs, "dev", "zero"))
    os.symlink("../../../../../.." + host_file, os.path.join(rootfs, "dev", "random"))
    os.symlink("/proc/self/root/dev/sda", os.path.join(rootfs, "dev", "full"))
    os.symlink(host_dev, os.path.join(rootfs, "dev", "fuse-x"))
    watch = HostWatch(env.tmp)
    out = env.rt("run", "--bundle", bundle, env.cid()).stdout.split()
    assert out == ["c"] * 5
    assert open(host_file).read() == "host\n" and not os.path.lexists(host_dev)
    watch.assert_unchanged()


def test_dev_itself_a_symlink_to_a_host_directory(env):
    host_dir = os.path.join(env.tmp, "host-dev-dir")
    os.makedirs(host_dir)
    bundle = env.bundle(["sh", "-c", "ls -l /dev/null | cut -c1"])
    config = read_config(bundle)
    config["mounts"] = [m for m in config["mounts"] if not m["destination"].startswith("/dev")]
    write_config(bundle, config)
    replace_by_symlink(os.path.join(bundle, "rootfs"), "dev", host_dir)
    watch = HostWatch(env.tmp, host_dir)
    result = env.rt("run", "--bundle", bundle, env.cid(), check=False)
    if result.returncode == 0:
        assert result.stdout.strip() == "c"
    else:
        assert_one_line_error(result)
    watch.assert_unchanged()


# -- the runtime out of reach ----------------------------------------------------------

SCANNER = r'''
while :; do
  for p in /proc/[0-9]*; do
    l=$(readlink $p/exe 2>/dev/null) || continue
    case "$l" in /bin/busybox) ;; *) echo "$p $l" >> /tmp/found ;; esac
  done
done
'''


def test_exec_joiner_is_not_reachable_before_it_execs(env):
    """Between its fork and execve, the process `exec` starts in the
    container is the host's interpreter, with the CLI's memory and
    environment, inside the container's pid namespace. A container process
    scanning /proc all the time must never open its exe (the window is
    closed by making it non-dumpable)."""
    bundle = env.bundle(["sh", "-c", SCANNER])
    cid = env.cid()
    env.rt("create", "--bundle", bundle, cid)
    env.rt("start", cid)
    for _ in range(20):
        env.rt("exec", cid, "true")
    found = os.path.join(bundle, "rootfs", "tmp", "found")
    seen = open(found).read() if os.path.exists(found) else ""
    env.rt("delete", "--force", cid)
    assert seen == ""


EXPLOIT = """#!/proc/self/exe
import errno, os
fd = os.open("/proc/self/exe", os.O_RDONLY)
print("exe", os.readlink("/proc/self/exe"))
try:
    os.close(os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_APPEND))  # opens, writes nothing
    print("OPENED-FOR-WRITE")
except OSError as e:
    print("refused", errno.errorcode[e.errno])
"""


def test_shebang_proc_self_exe_cannot_reopen_the_runtime_for_writing(env):
    """CVE-2019-5736 as published: the entry point is a script whose
    interpreter is `/proc/self/exe`, so the kernel runs the binary of the
    process that execs it: the host's interpreter, which the sandbox and
    the gofer run. The image carries a matching Python library (bound here
    read-only from the host) so the exploit's code runs in the container
    and tries to reopen its own executable for writing. The kernel refuses
    (ETXTBSY) as long as any process runs the binary, and the sandbox, PID 1
    of every container, always does; the binary is unchanged."""
    python = os.path.realpath(sys.executable)
    prefix = os.path.dirname(os.path.dirname(python))
    with open(python, "rb") as f:
        before = (os.stat(python).st_mtime_ns, hashlib.sha256(f.read()).hexdigest())
    bundle = env.bundle(["/bin/evil"])
    rootfs = os.path.join(bundle, "rootfs")
    with open(os.path.join(rootfs, "bin", "evil"), "w") as f:
        f.write(EXPLOIT)
    os.chmod(os.path.join(rootfs, "bin", "evil"), 0o755)
    os.symlink("usr/lib", os.path.join(rootfs, "lib"))
    os.symlink("usr/lib64", os.path.join(rootfs, "lib64"))
    config = read_config(bundle)
    for path in ("/usr/lib", "/usr/lib64", prefix):
        if os.path.isdir(path):
            config["mounts"].append({"destination": path, "type": "bind", "source": path,
                                     "options": ["rbind", "ro"]})
    write_config(bundle, config)
    out = env.rt("run", "--bundle", bundle, env.cid()).stdout.splitlines()
    assert out[0] == f"exe {python}"  # the exploit ran with the runtime's interpreter as its exe
    assert out[1] == "refused ETXTBSY"
    with open(python, "rb") as f:
        assert (os.stat(python).st_mtime_ns, hashlib.sha256(f.read()).hexdigest()) == before


FD_REPORT = ("ls /proc/self/fd | sort -n | tr '\\n' ' '; echo; readlink /proc/self/cwd; "
             "readlink /proc/self/root; ls -l /proc/self/fd | grep -c -- '->'")


def fd_report(text):
    fds, cwd, root = text.splitlines()[:3]
    return {int(f) for f in fds.split()}, cwd, root


def test_no_host_fd_or_cwd_reaches_workload_or_exec(env):
    """CVE-2024-21626: the CLIs run from a host directory and inherit an fd
    of a host directory (as containerd leaks its socket as fd 3); neither
    reaches the workload nor an exec'd process (with or without --cwd)."""
    host_dir = os.path.join(env.tmp, "host-dir")
    os.makedirs(host_dir)
    bundle = env.bundle(["sh", "-c", FD_REPORT + "; sleep 1000"])
    cid = env.cid()
    leaked = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.set_inheritable(leaked, True)
        kw = {"cwd": host_dir, "pass_fds": [leaked]}
        out = os.path.join(env.tmp, "out")
        with open(out, "w") as stdout:  # a file: the container keeps its stdio open
            created = subprocess.run(env.rt.argv("create", "--bundle", bundle, cid), stdout=stdout,
                                     stderr=stdout, timeout=30, **kw)
        assert created.returncode == 0, open(out).read()
        env.rt("start", cid, **kw)
        wait_until(lambda: open(out).read().count("\n") >= 4, 10, "the workload's report")
        fds, cwd, root = fd_report(open(out).read())
        assert fds <= {0, 1, 2, 3} and (cwd, root) == ("/", "/"), open(out).read()
        for extra in ([], ["--cwd", "/tmp"]):
            seen = env.rt("exec", *extra, cid, "sh", "-c", FD_REPORT, **kw).stdout
            fds, cwd, root = fd_report(seen)
            assert fds <= {0, 1, 2, 3}, seen
            assert (cwd, root) == (extra[1] if extra else "/", "/"), seen
    finally:
        os.close(leaked)
        env.rt("delete", "--force", cid)


@pytest.mark.parametrize("fd", range(3, 9))
def test_cwd_through_proc_self_fd_stays_inside(env, fd):
    """CVE-2024-21626 itself: process.cwd `/proc/self/fd/N` would be a host
    directory if the runtime leaked one as fd N. Create fails cleanly, or
    the process's cwd is inside the container."""
    host_dir = os.path.join(env.tmp, "host-dir")
    os.makedirs(host_dir)
    leaked = os.open(host_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        bundle = env.bundle(["sh", "-c", "pwd; ls .. | head -3"], cwd=f"/proc/self/fd/{fd}")
        result = env.rt("run", "--bundle", bundle, env.cid(), check=False, pass_fds=[leaked])
        if result.returncode == 0:
            assert env.tmp not in result.stdout and not result.stdout.startswith(host_dir)
        else:
            assert "Traceback" not in result.stderr and result.stderr.count("runsc-py: ") == 1
    finally:
        os.close(leaked)


# -- ids ---------------------------------------------------------------------------------

BAD_IDS = ["../../x", "a/b", "..", ".", "x/../../y", "/abs", "a" * 1025, "a:b", "é"]
COMMANDS = [["state"], ["start"], ["kill"], ["delete"], ["delete", "--force"], ["ps"], ["exec"],
            ["events", "--stats"], ["pause"], ["resume"], ["wait"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_ids_with_path_elements_rejected_by_every_command(env, command):
    os.makedirs(env.root)
    outside = sorted(set(os.listdir(env.tmp)) | {"runtime.log"})
    for bad in BAD_IDS:
        args = command + [bad] + (["true"] if command == ["exec"] else [])
        result = env.rt(*args, check=False)
        assert_one_line_error(result)
        assert "invalid container id" in result.stderr or "longer than 1024" in result.stderr, result.stderr
    assert os.listdir(env.root) == [] and sorted(set(os.listdir(env.tmp)) | {"runtime.log"}) == outside
