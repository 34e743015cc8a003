"""The process's confinement, read back inside real containers: user and
groups, umask, capability sets, no_new_privs, rlimits, oom_score_adj, I/O
priority, scheduler, CPU affinity, personality; sysctls, devices, masked
and read-only paths, root propagation; and every refusal (one line, exit 1,
nothing left behind).

Capability sets after execve follow capabilities(7) for a program without
file capabilities (busybox): a root process gets its bounding set (plus the
inheritable one) as permitted and effective set unless no_new_privs keeps
it to the permitted set it had; a non-root one keeps only its ambient set.
Expected values below are worked out with those rules (and match runc's)."""

import os

import pytest

from tests.support.busybox import read_config, write_config
from tests.support.confined import (assert_refused, cap_sets, caps, config, lacks_cap, log_messages,
                                    output, run, status)
from tests.support.runtime import wait_until

STATUS = ["cat", "/proc/self/status"]


# -- user, groups, umask ----------------------------------------------------------------------

def test_uid_gid_additional_groups_and_umask(env):
    out = output(env, config(["sh", "-c", "cat /proc/self/status; umask; touch /tmp/f; stat -c %a /tmp/f"],
                             user={"uid": 1000, "gid": 1001, "additionalGids": [5, 1002], "umask": 0o027}))
    fields = status(out)
    assert fields["Uid"].split() == ["1000"] * 4
    assert fields["Gid"].split() == ["1001"] * 4
    assert fields["Groups"].split() == ["5", "1002"]
    assert out.splitlines()[-2:] == ["0027", "640"]


def test_root_without_additional_groups_has_none(env):
    fields = status(output(env, config(STATUS)))
    assert fields["Uid"].split() == ["0"] * 4 and fields["Groups"] == ""


@pytest.mark.parametrize("mask", [0o077, 0o002])
def test_unset_umask_is_the_callers(env, mask):
    """runtime-spec config.md, user.umask: "If unspecified, the umask should
    not be changed from the calling process' umask"."""
    out = output(env, config(["sh", "-c", "umask"]), umask=mask)
    assert out.strip() == f"{mask:04o}"


# -- capabilities -----------------------------------------------------------------------------

def test_capability_sets_of_root_with_no_new_privs(env):
    sets = cap_sets(output(env, config(STATUS, noNewPrivileges=True, capabilities={
        "bounding": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_KILL"],
        "effective": ["CAP_CHOWN", "CAP_NET_RAW"],
        "permitted": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"],
        "inheritable": ["CAP_KILL"],
        "ambient": ["CAP_KILL"]})))
    assert sets["CapBnd"] == caps("CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_KILL")
    assert sets["CapInh"] == caps("CAP_KILL")
    assert sets["CapAmb"] == caps("CAP_KILL")
    # root's execve would grant the bounding set; no_new_privs keeps it to the permitted set
    assert sets["CapPrm"] == sets["CapEff"] == caps("CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL")


def test_capability_sets_of_root_without_no_new_privs(env):
    out = output(env, config(STATUS, noNewPrivileges=False, capabilities={
        "bounding": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_KILL"],
        "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"], "inheritable": ["CAP_KILL"]}))
    sets = cap_sets(out)
    assert status(out)["NoNewPrivs"] == "0"
    assert sets["CapBnd"] == caps("CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_KILL")
    assert sets["CapPrm"] == sets["CapEff"] == sets["CapBnd"]  # execve as root: the bounding set
    assert sets["CapInh"] == caps("CAP_KILL") and sets["CapAmb"] == 0


def test_capability_sets_of_a_user_with_ambient_capabilities(env):
    out = output(env, config(STATUS, noNewPrivileges=False, user={"uid": 1000, "gid": 1000}, capabilities={
        "bounding": ["CAP_NET_RAW", "CAP_CHOWN", "CAP_SYS_ADMIN"],
        "effective": ["CAP_NET_RAW"],
        "permitted": ["CAP_NET_RAW", "CAP_CHOWN"],
        "inheritable": ["CAP_NET_RAW", "CAP_CHOWN"],
        "ambient": ["CAP_NET_RAW"]}))
    sets = cap_sets(out)
    assert status(out)["Uid"].split() == ["1000"] * 4
    assert sets["CapBnd"] == caps("CAP_NET_RAW", "CAP_CHOWN", "CAP_SYS_ADMIN")
    assert sets["CapInh"] == caps("CAP_NET_RAW", "CAP_CHOWN")
    # a non-root execve keeps exactly the ambient set
    assert sets["CapAmb"] == sets["CapPrm"] == sets["CapEff"] == caps("CAP_NET_RAW")


def test_a_user_without_ambient_capabilities_has_none_after_exec(env):
    sets = cap_sets(output(env, config(STATUS, user={"uid": 1000, "gid": 1000}, capabilities={
        "bounding": ["CAP_NET_RAW"], "effective": ["CAP_NET_RAW"], "permitted": ["CAP_NET_RAW"]})))
    assert sets == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": caps("CAP_NET_RAW"), "CapAmb": 0}


def test_missing_capability_sets_are_empty(env):
    """As with runc: no `capabilities`, or a set missing from it, is empty."""
    cfg = config(STATUS)
    del cfg["process"]["capabilities"]
    assert set(cap_sets(output(env, cfg, "none")).values()) == {0}
    sets = cap_sets(output(env, config(STATUS, capabilities={"effective": ["CAP_KILL"],
                                                             "permitted": ["CAP_KILL"]}), "nobnd"))
    # an empty bounding set leaves root nothing to gain at execve
    assert sets["CapBnd"] == sets["CapPrm"] == sets["CapEff"] == 0


def test_ambient_capability_without_inheritable_is_skipped_with_a_warning(env):
    sets = cap_sets(output(env, config(STATUS, user={"uid": 1000, "gid": 1000}, capabilities={
        "bounding": ["CAP_NET_RAW", "CAP_CHOWN"], "permitted": ["CAP_NET_RAW", "CAP_CHOWN"],
        "inheritable": ["CAP_NET_RAW"], "ambient": ["CAP_NET_RAW", "CAP_CHOWN"]})))
    assert sets["CapAmb"] == caps("CAP_NET_RAW")
    assert any("CAP_CHOWN not raised" in m for m in log_messages(env, "warning"))


def test_unknown_capability_is_refused_by_name(env):
    assert_refused(env, config(STATUS, capabilities={"bounding": ["CAP_NET_RAW", "CAP_FLY"]}),
                   "process.capabilities.bounding[1]", "CAP_FLY")


@pytest.mark.parametrize("sets, needles", [
    ({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"], "effective": ["CAP_KILL", "CAP_CHOWN"]},
     ["process.capabilities.effective", "CAP_CHOWN not in process.capabilities.permitted"]),
    ({"bounding": ["CAP_KILL"], "inheritable": ["CAP_NET_RAW"]},
     ["process.capabilities.inheritable", "CAP_NET_RAW not in process.capabilities.bounding"]),
])
def test_capability_sets_the_kernel_would_refuse_are_refused(env, sets, needles):
    assert_refused(env, config(STATUS, capabilities=sets), *needles, command="create")


@pytest.mark.skipif(not lacks_cap("CAP_SYS_RESOURCE"), reason="the runtime has CAP_SYS_RESOURCE here")
def test_a_capability_the_runtime_lacks_is_refused(env):
    assert_refused(env, config(STATUS, capabilities={"bounding": ["CAP_SYS_RESOURCE"],
                                                     "permitted": ["CAP_SYS_RESOURCE"]}),
                   "process.capabilities.permitted: CAP_SYS_RESOURCE", "the runtime itself does not have")


def test_no_new_privileges(env):
    assert status(output(env, config(STATUS, noNewPrivileges=True), "on"))["NoNewPrivs"] == "1"
    assert status(output(env, config(STATUS, noNewPrivileges=False), "off"))["NoNewPrivs"] == "0"


# -- rlimits ----------------------------------------------------------------------------------

_LIMITS_ROWS = {
    "RLIMIT_CPU": "Max cpu time", "RLIMIT_FSIZE": "Max file size", "RLIMIT_DATA": "Max data size",
    "RLIMIT_STACK": "Max stack size", "RLIMIT_CORE": "Max core file size", "RLIMIT_RSS": "Max resident set",
    "RLIMIT_NPROC": "Max processes", "RLIMIT_NOFILE": "Max open files", "RLIMIT_MEMLOCK": "Max locked memory",
    "RLIMIT_AS": "Max address space", "RLIMIT_LOCKS": "Max file locks", "RLIMIT_SIGPENDING": "Max pending signals",
    "RLIMIT_MSGQUEUE": "Max msgqueue size", "RLIMIT_NICE": "Max nice priority",
    "RLIMIT_RTPRIO": "Max realtime priority", "RLIMIT_RTTIME": "Max realtime timeout",
}
# (soft, hard) wanted; capped below at what this test process (whose limits
# the runtime inherits) has, since raising a hard limit needs CAP_SYS_RESOURCE.
_WANTED = {
    "RLIMIT_CPU": (1000, 2000), "RLIMIT_FSIZE": (1 << 30, 1 << 31), "RLIMIT_DATA": (1 << 32, 1 << 33),
    "RLIMIT_STACK": (8 << 20, 16 << 20), "RLIMIT_CORE": (0, 1 << 20), "RLIMIT_RSS": (1 << 30, 1 << 31),
    "RLIMIT_NPROC": (1000, 2000), "RLIMIT_NOFILE": (512, 1000), "RLIMIT_MEMLOCK": (1 << 16, 1 << 17),
    "RLIMIT_AS": (1 << 34, 1 << 35), "RLIMIT_LOCKS": (100, 200), "RLIMIT_SIGPENDING": (100, 200),
    "RLIMIT_MSGQUEUE": (8192, 16384), "RLIMIT_NICE": (0, 0), "RLIMIT_RTPRIO": (0, 0),
    "RLIMIT_RTTIME": (1000000, 2000000),
}


def _limits_table(text):
    """/proc/PID/limits as {row name: (soft, hard)} (strings, as shown)."""
    lines = text.splitlines()
    header = lines[0]
    soft_at, hard_at, units_at = header.index("Soft Limit"), header.index("Hard Limit"), header.index("Units")
    return {line[:soft_at].strip(): (line[soft_at:hard_at].strip(), line[hard_at:units_at].strip())
            for line in lines[1:]}


def test_every_rlimit_is_read_back(env):
    import resource
    from specs.names import RLIMITS
    rlimits = []
    for kind, (soft, hard) in _WANTED.items():
        _, current = resource.getrlimit(RLIMITS[kind])
        if current != resource.RLIM_INFINITY:
            hard = min(hard, current)
        rlimits.append({"type": kind, "soft": min(soft, hard), "hard": hard})
    out = output(env, config(["sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/self/limits"], rlimits=rlimits))
    soft_n, hard_n, *table = out.splitlines()
    by_kind = {r["type"]: r for r in rlimits}
    assert (int(soft_n), int(hard_n)) == (by_kind["RLIMIT_NOFILE"]["soft"], by_kind["RLIMIT_NOFILE"]["hard"])
    shown = _limits_table("\n".join(table))
    for kind, row in _LIMITS_ROWS.items():
        assert shown[row] == (str(by_kind[kind]["soft"]), str(by_kind[kind]["hard"])), kind


def test_unlimited_rlimit(env):
    import resource
    if resource.getrlimit(resource.RLIMIT_CORE)[1] != resource.RLIM_INFINITY:
        pytest.skip("this process's RLIMIT_CORE is not unlimited")
    out = output(env, config(["sh", "-c", "ulimit -c; ulimit -Hc"],
                             rlimits=[{"type": "RLIMIT_CORE", "soft": 2 ** 64 - 1, "hard": 2 ** 64 - 1}]))
    assert out.split() == ["unlimited", "unlimited"]


@pytest.mark.skipif(not lacks_cap("CAP_SYS_RESOURCE"), reason="the runtime can raise hard limits here")
@pytest.mark.parametrize("command", ["create", "run"])
def test_raising_a_hard_limit_is_refused_naming_the_rlimit(env, command):
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert_refused(env, config(STATUS, rlimits=[{"type": "RLIMIT_NOFILE", "soft": 64, "hard": hard + 1}]),
                   "process.rlimits RLIMIT_NOFILE", "CAP_SYS_RESOURCE", command=command)


@pytest.mark.parametrize("rlimits, needle", [
    ([{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}], "unknown rlimit 'RLIMIT_NOPE'"),
    ([{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}, {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}],
     "RLIMIT_CORE is also set by process.rlimits[0]"),
    ([{"type": "RLIMIT_CORE", "soft": 2, "hard": 1}], "soft limit 2 exceeds hard limit 1"),
])
def test_bad_rlimits_are_refused(env, rlimits, needle):
    assert_refused(env, config(STATUS, rlimits=rlimits), needle)


# -- OOM score ----------------------------------------------------------------------------------

def _runtime_oom_score_adj(value):
    """preexec_fn giving the runtime this oom_score_adj (raising it needs no privilege)."""
    def set_it():
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    return set_it


def test_oom_score_adj_is_written_when_set(env):
    out = output(env, config(["cat", "/proc/self/oom_score_adj"], oomScoreAdj=500),
                 preexec_fn=_runtime_oom_score_adj(123))
    assert out.strip() == "500"


def test_oom_score_adj_is_unchanged_when_unset(env):
    """runtime-spec: oomScoreAdj "if unset MUST NOT be changed": the process
    keeps the runtime's own value."""
    out = output(env, config(["cat", "/proc/self/oom_score_adj"]), preexec_fn=_runtime_oom_score_adj(123))
    assert out.strip() == "123"


@pytest.mark.skipif(not lacks_cap("CAP_SYS_RESOURCE"), reason="the runtime may lower oom_score_adj here")
def test_lowering_oom_score_adj_without_privilege_fails_clearly(env):
    assert_refused(env, config(STATUS, oomScoreAdj=-5), "oomScoreAdj", "permission denied")


# -- scheduling, I/O priority, CPU affinity, personality --------------------------------------------

@pytest.mark.parametrize("prio, shown", [
    ({"class": "IOPRIO_CLASS_BE", "priority": 3}, "best-effort: prio 3"),
    ({"class": "IOPRIO_CLASS_IDLE"}, "idle"),
    ({"class": "IOPRIO_CLASS_RT", "priority": 1}, "realtime: prio 1"),
])
def test_io_priority(env, prio, shown):
    assert output(env, config(["ionice"], ioPriority=prio)).strip() == shown


def _stat(text):
    """Fields of /proc/PID/stat after the command name: index 0 is field 3."""
    return text[text.rindex(")") + 2:].split()


def test_scheduler_policy_and_nice(env):
    fields = _stat(output(env, config(["cat", "/proc/self/stat"],
                                      scheduler={"policy": "SCHED_BATCH", "nice": 7})))
    assert (fields[19 - 3], fields[41 - 3]) == ("7", "3")  # nice, policy SCHED_BATCH


def test_scheduler_reset_on_fork(env):
    """SCHED_FLAG_RESET_ON_FORK: "a negative nice value is reset to zero in
    child processes" (sched(7)). (A real-time policy would need the
    container's cgroup to have real-time runtime, which cgroup v1 gives a
    new cgroup none of.)"""
    out = output(env, config(["sh", "-c", "cat /proc/self/stat; cat /proc/$$/stat"], scheduler={
        "policy": "SCHED_OTHER", "nice": -5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}))
    child, shell = (_stat(line) for line in out.splitlines())
    assert (shell[19 - 3], shell[41 - 3]) == ("-5", "0")
    assert child[19 - 3] == "0"


@pytest.mark.skipif(not {0, 1} <= os.sched_getaffinity(0), reason="needs CPUs 0 and 1")
def test_exec_cpu_affinity(env):
    out = output(env, config(STATUS, execCPUAffinity={"initial": "0", "final": "1"}), "final")
    assert status(out)["Cpus_allowed_list"] == "1"
    out = output(env, config(STATUS, execCPUAffinity={"initial": "1"}), "initial")
    assert status(out)["Cpus_allowed_list"] == "1"


def test_personality(env):
    out = output(env, config(["cat", "/proc/self/personality"], linux={"personality": {"domain": "LINUX32"}}))
    assert int(out, 16) == 0x0008  # PER_LINUX32


# -- LSMs -------------------------------------------------------------------------------------------

def _lsm_enabled(name):
    from sandbox import confine
    return {"apparmor": confine.apparmor_enabled, "selinux": confine.selinux_enabled}[name]()


@pytest.mark.skipif(_lsm_enabled("apparmor"), reason="AppArmor is enabled here")
def test_apparmor_profile_without_apparmor_is_refused(env):
    assert_refused(env, config(STATUS, apparmorProfile="docker-default"),
                   "process.apparmorProfile", "AppArmor is not enabled")
    assert output(env, config(["true"], apparmorProfile="")) == ""  # empty: nothing asked


@pytest.mark.skipif(_lsm_enabled("selinux"), reason="SELinux is enabled here")
@pytest.mark.parametrize("field", ["selinuxLabel", "mountLabel"])
def test_selinux_labels_without_selinux_are_refused(env, field):
    label = "system_u:system_r:container_t:s0"
    cfg = config(STATUS, linux={"mountLabel": label}) if field == "mountLabel" else config(STATUS, selinuxLabel=label)
    assert_refused(env, cfg, field, "SELinux is not enabled")


# -- sysctl -----------------------------------------------------------------------------------------

def test_namespaced_sysctls_are_set_inside(env):
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        host_forward = f.read()
    out = output(env, config(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni "
                                          "/proc/sys/kernel/domainname"],
                             linux={"sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234",
                                               "kernel.domainname": "example.org"}}))
    assert out.split() == ["1", "1234", "example.org"]
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        assert f.read() == host_forward


@pytest.mark.parametrize("key, needle", [
    ("vm.swappiness", "not a namespaced sysctl"),
    ("kernel.pid_max", "not a namespaced sysctl"),
])
def test_host_sysctls_are_refused(env, key, needle):
    assert_refused(env, config(STATUS, linux={"sysctl": {key: "10"}}), f"linux.sysctl '{key}'", needle,
                   command="create")


def test_network_sysctl_without_a_network_namespace_is_refused(env):
    cfg = config(STATUS, linux={"sysctl": {"net.ipv4.ip_forward": "1"}})
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
    assert_refused(env, cfg, 'linux.sysctl: sysctl "net.ipv4.ip_forward" not allowed in host network namespace',
                   command="create")


# One sysctl of each namespaced family, with a value differing from the host's.
NAMESPACED = {"network": ("net.ipv4.ip_forward", "/proc/sys/net/ipv4/ip_forward", lambda v: str(1 - int(v))),
              "ipc": ("kernel.shmmni", "/proc/sys/kernel/shmmni", lambda v: str(int(v) - 1)),
              "uts": ("kernel.domainname", "/proc/sys/kernel/domainname", lambda v: v + "x")}
NS_FILE = {"network": "net", "ipc": "ipc", "uts": "uts"}


def joining(kind, path, key, value):
    cfg = config(STATUS, linux={"sysctl": {key: value}})
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != kind]
    cfg["linux"]["namespaces"].append({"type": kind, "path": path})
    if kind == "uts":
        cfg.pop("hostname", None)  # a hostname needs a new uts namespace
    return cfg


def read(path):
    with open(path) as f:
        return f.read().strip()


@pytest.mark.parametrize("kind", sorted(NAMESPACED))
def test_sysctl_in_a_joined_namespace_of_the_runtime_is_refused(env, kind):
    """Joining the runtime's own namespace by path (here the test process's,
    which the runtime it runs shares) is the host's: runc refuses it
    ("sysctl ... not allowed in host network namespace"), at create, and
    the host's value stays."""
    key, proc_path, other = NAMESPACED[kind]
    before = read(proc_path)
    cfg = joining(kind, f"/proc/{os.getpid()}/ns/{NS_FILE[kind]}", key, other(before))
    try:
        assert_refused(env, cfg, f'linux.sysctl: sysctl "{key}" not allowed in host {kind} namespace',
                       command="create")
        assert read(proc_path) == before
    finally:
        if read(proc_path) != before:  # a regression must not leave the host changed
            with open(proc_path, "w") as f:
                f.write(before)


@pytest.mark.parametrize("kind", sorted(NAMESPACED))
def test_sysctl_in_a_joined_namespace_of_its_own_is_set_there(env, kind):
    """A namespace joined by path that is not the runtime's is the
    container's own: the sysctl is set in it, not on the host."""
    import subprocess
    key, proc_path, other = NAMESPACED[kind]
    before = read(proc_path)
    flag = {"network": "--net", "ipc": "--ipc", "uts": "--uts"}[kind]
    holder = subprocess.Popen(["unshare", flag, "sleep", "1000"])
    try:
        wait_until(lambda: os.readlink(f"/proc/{holder.pid}/ns/{NS_FILE[kind]}")
                   != os.readlink(f"/proc/self/ns/{NS_FILE[kind]}"), 10, "the namespace holder")
        ns = f"/proc/{holder.pid}/ns/{NS_FILE[kind]}"

        def in_holder():  # /proc/sys shows the reader's namespaces
            return subprocess.run(["nsenter", f"{flag}={ns}", "cat", proc_path], check=True,
                                  capture_output=True, text=True).stdout.strip()
        value = other(in_holder())
        cfg = joining(kind, ns, key, value)
        cfg["process"]["args"] = ["cat", proc_path]
        assert output(env, cfg).strip() == value
        assert in_holder() == value  # set in the joined namespace
        assert read(proc_path) == before  # and not on the host
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("key, value, needle", [
    ("net.ipv4.ip_forward", "yes", "invalid argument"),
    ("net.ipv4.no_such_knob", "1", "no such file or directory"),
])
def test_a_sysctl_the_kernel_refuses_fails_create(env, key, value, needle):
    assert_refused(env, config(STATUS, linux={"sysctl": {key: value}}), f"linux.sysctl {key}", needle,
                   command="create")


# -- devices, masked and read-only paths ----------------------------------------------------------

def test_devices_are_created_with_their_numbers_mode_and_owner(env):
    devices = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 1000, "gid": 1001},
        {"path": "/dev/disks/loop7", "type": "b", "major": 7, "minor": 7, "fileMode": 0o640},
        {"path": "/dev/kmsg2", "type": "u", "major": 1, "minor": 11},
        {"path": "/dev/pipe", "type": "p"},
    ]
    out = output(env, config(["stat", "-c", "%n %F %t %T %a %u %g", *[d["path"] for d in devices]],
                             linux={"devices": devices}))
    assert out.splitlines() == [
        "/dev/fuse character special file a e5 600 1000 1001",
        "/dev/disks/loop7 block special file 7 7 640 0 0",
        "/dev/kmsg2 character special file 1 b 666 0 0",
        "/dev/pipe fifo 0 0 666 0 0",
    ]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_devices_in_a_user_namespace_are_bind_mounts_of_the_hosts(env):
    """mknod(2) of a device is refused in a user namespace: the default
    devices and linux.devices are the host's nodes, bound (runc's way); a
    FIFO is made in place."""
    cfg = config(["sh", "-c", "stat -c '%n %F %t %T' /dev/null /dev/fuse /dev/pipe && echo x > /dev/null"],
                 linux={"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                                    {"path": "/dev/pipe", "type": "p"}],
                        "uidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}],
                        "gidMappings": [{"containerID": 0, "hostID": 0, "size": 65536}]})
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["mounts"] = [mnt for mnt in cfg["mounts"] if mnt["type"] != "cgroup"]
    assert output(env, cfg).splitlines() == ["/dev/null character special file 1 3",
                                             "/dev/fuse character special file a e5", "/dev/pipe fifo 0 0"]


def test_default_devices_exist(env):
    out = output(env, config(["stat", "-c", "%n %t %T %a", "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                              "/dev/urandom", "/dev/tty"]))
    assert out.splitlines() == ["/dev/null 1 3 666", "/dev/zero 1 5 666", "/dev/full 1 7 666",
                                "/dev/random 1 8 666", "/dev/urandom 1 9 666", "/dev/tty 5 0 666"]


def test_masked_paths_read_empty_and_readonly_paths_refuse_writes(env):
    cfg = config(["sh", "-c", "cat /etc/secret; ls -A /opt/secrets; echo; touch /opt/secrets/x; "
                              "touch /data/x; echo 1 > /proc/sys/kernel/domainname; echo end"],
                 linux={"maskedPaths": ["/etc/secret", "/opt/secrets", "/no/such/path"],
                        "readonlyPaths": ["/data", "/proc/sys", "/no/such/dir"]})
    bundle = env.bundle(config=cfg)
    rootfs = os.path.join(bundle, "rootfs")
    with open(os.path.join(rootfs, "etc", "secret"), "w") as f:
        f.write("password\n")
    os.makedirs(os.path.join(rootfs, "opt", "secrets"))
    with open(os.path.join(rootfs, "opt", "secrets", "key"), "w") as f:
        f.write("key\n")
    os.makedirs(os.path.join(rootfs, "data"))
    result = env.rt("run", "--bundle", bundle, env.cid())
    assert result.stdout == "\nend\n"                      # the secret and the key stay hidden
    errors = result.stderr.splitlines()
    assert len(errors) == 3 and all("Read-only file system" in e for e in errors), errors
    assert os.listdir(os.path.join(rootfs, "data")) == []


# -- root propagation -------------------------------------------------------------------------

def _root_mount(mountinfo):
    """The optional fields (shared:N, master:N, unbindable) of the "/" mount."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if fields[4] == "/":
            return fields[6:fields.index("-")]
    raise AssertionError("no / in mountinfo")


@pytest.mark.parametrize("propagation, tag", [
    ("private", None), ("rprivate", None), ("slave", None), ("rslave", None),
    ("shared", "shared:"), ("rshared", "shared:"), ("unbindable", "unbindable"), ("runbindable", "unbindable"),
])
def test_rootfs_propagation(env, propagation, tag):
    """This host's mounts are private, so a slave root has no master."""
    with open("/proc/self/mountinfo") as f:
        if any("shared:" in line.split(" - ")[0] for line in f):
            pytest.skip("the host has shared mounts")
    fields = _root_mount(output(env, config(["cat", "/proc/self/mountinfo"],
                                            linux={"rootfsPropagation": propagation})))
    if tag is None:
        assert fields == []
    else:
        assert len(fields) == 1 and fields[0].startswith(tag), fields


@pytest.fixture
def shared_dir(env):
    """A tmpfs in the test's directory, shared like a systemd host's "/"."""
    import subprocess
    path = os.path.join(env.tmp, "shared")
    os.makedirs(path)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True)
    try:
        subprocess.run(["mount", "--make-shared", path], check=True)
        yield path
    finally:
        env.rt.cleanup()
        subprocess.run(["umount", "-R", path], check=True)


def test_rootfs_on_a_shared_mount_sends_no_mount_to_the_host(env, shared_dir):
    import shutil
    rootfs = os.path.join(shared_dir, "rootfs")
    shutil.copytree(env.template, rootfs, symlinks=True)
    os.makedirs(os.path.join(rootfs, "mnt"))
    cfg = config(["sh", "-c", "mount -t tmpfs tmpfs /mnt && cat /proc/self/mountinfo > /info; sleep 100"],
                 capabilities={k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")})
    bundle = env.bundle(config=cfg)
    cfg = read_config(bundle)
    cfg["root"]["path"] = rootfs
    write_config(bundle, cfg)
    rt, cid = env.rt, env.cid()
    rt("run", "--detach", "--bundle", bundle, cid)
    wait_until(lambda: os.path.getsize(os.path.join(rootfs, "info")) if os.path.exists(os.path.join(rootfs, "info"))
               else 0, 10, "the container's mount")
    with open("/proc/self/mountinfo") as f:
        host = [line.split()[4] for line in f]
    assert [p for p in host if p.startswith(shared_dir + "/")] == []
    with open(os.path.join(rootfs, "info")) as f:
        fields = _root_mount(f.read())
    assert len(fields) == 1 and fields[0].startswith("master:"), fields  # host events still arrive
    rt("delete", "--force", cid)


def test_a_shared_bind_mount_propagates_to_the_host(env, shared_dir):
    """Bidirectional propagation on purpose: a bind with `rshared`."""
    volume = os.path.join(shared_dir, "vol")
    os.makedirs(volume)
    cfg = config(["sh", "-c", "mount -t tmpfs tmpfs /vol/in"],
                 capabilities={k: ["CAP_SYS_ADMIN"] for k in ("bounding", "effective", "permitted")})
    os.makedirs(os.path.join(volume, "in"))
    cfg["mounts"].append({"destination": "/vol", "type": "bind", "source": volume, "options": ["rbind", "rshared"]})
    run(env, cfg)
    with open("/proc/self/mountinfo") as f:
        assert any(line.split()[4] == os.path.join(volume, "in") for line in f)


# -- exec -------------------------------------------------------------------------------------------

@pytest.fixture
def running(env):
    """A running container (default confinement) to exec into."""
    cid = env.cid("exec")
    env.rt("run", "--detach", "--bundle", env.bundle(["sleep", "1000"]), cid)
    yield cid
    env.rt("delete", "--force", cid)


def test_exec_cap_adds_to_bounding_effective_and_permitted(env, running):
    sets = cap_sets(env.rt("exec", "--cap", "CAP_NET_RAW", running, *STATUS).stdout)
    default = caps("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert sets["CapBnd"] == sets["CapPrm"] == sets["CapEff"] == default | caps("CAP_NET_RAW")
    assert sets["CapInh"] == sets["CapAmb"] == 0


def test_exec_unknown_cap_is_refused(env, running):
    result = env.rt("exec", "--cap", "CAP_FLY", running, "true", check=False)
    assert result.returncode == 1 and "CAP_FLY" in result.stderr and len(result.stderr.splitlines()) == 1


def test_exec_user_and_groups(env, running):
    fields = status(env.rt("exec", "--user", "1000:1001", "--additional-gids", "7", running, *STATUS).stdout)
    assert fields["Uid"].split() == ["1000"] * 4 and fields["Gid"].split() == ["1001"] * 4
    assert fields["Groups"] == "7"
    assert int(fields["CapEff"], 16) == 0  # a non-root user has no capability after execve


def test_exec_no_new_privs(env):
    cid = env.cid()
    env.rt("run", "--detach", "--bundle", env.bundle(config=config(["sleep", "1000"], noNewPrivileges=False)), cid)
    assert status(env.rt("exec", cid, *STATUS).stdout)["NoNewPrivs"] == "0"
    assert status(env.rt("exec", "--no-new-privs", cid, *STATUS).stdout)["NoNewPrivs"] == "1"
    env.rt("delete", "--force", cid)


def test_exec_process_json_confinement(env, running):
    import json
    process = {"args": ["sh", "-c", "cat /proc/self/status; ulimit -n; umask; cat /proc/self/oom_score_adj"],
               "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 1000, "gid": 1000, "umask": 0o077},
               "capabilities": {"bounding": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"],
                                "inheritable": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]},
               "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 77, "hard": 88}],
               "noNewPrivileges": True, "oomScoreAdj": 321}
    path = os.path.join(env.tmp, "process.json")
    with open(path, "w") as f:
        json.dump(process, f)
    out = env.rt("exec", "--process", path, running).stdout
    sets = cap_sets(out)
    assert sets["CapBnd"] == sets["CapAmb"] == sets["CapEff"] == caps("CAP_CHOWN")
    assert status(out)["NoNewPrivs"] == "1" and status(out)["Uid"].split()[0] == "1000"
    assert out.splitlines()[-3:] == ["77", "0077", "321"]


def test_exec_refusals_leave_the_container_running(env, running):
    import json
    path = os.path.join(env.tmp, "process.json")
    with open(path, "w") as f:
        json.dump({"args": ["true"], "cwd": "/", "apparmorProfile": "x" if not _lsm_enabled("apparmor") else "",
                   "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_CHOWN"]}}, f)
    result = env.rt("exec", "--process", path, running, check=False)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert env.rt.status(running) == "running"
