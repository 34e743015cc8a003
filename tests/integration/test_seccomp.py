"""linux.seccomp in real containers: every action, argument conditions and
their operators, default-deny allow lists, flags, architectures, unknown
syscall names, SCMP_ACT_NOTIFY with a listener that answers through the
fd it receives, and exec'd processes under the container's filter.

The workloads are busybox (static): `mkdir` calls mkdir(2), `chmod`
chmod(2) with the mode as argument 1, `linux32` personality(PER_LINUX32),
`nc` socket(AF_INET, SOCK_STREAM)."""

import errno
import fcntl
import json
import os
import select
import socket
import struct

import pytest

from tests.support.confined import assert_refused, config, output, run, status
from tests.support.runtime import reap_orphans, wait_for_exit, wait_until

EPERM_TEXT = "Operation not permitted"


def seccomp(default="SCMP_ACT_ALLOW", syscalls=(), **fields):
    return {"seccomp": {"defaultAction": default, "syscalls": list(syscalls), **fields}}


def rule(names, action, **fields):
    return {"names": list(names), "action": action, **fields}


DENY_MKDIR = rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO")


# -- actions ---------------------------------------------------------------------------------

def test_errno_action_denies_with_eperm(env):
    result = run(env, config(["sh", "-c", "mkdir /tmp/x; echo rc=$?; grep Seccomp: /proc/self/status"],
                             linux=seccomp(syscalls=[DENY_MKDIR])))
    assert result.stdout.splitlines() == ["rc=1", "Seccomp:\t2"]
    assert EPERM_TEXT in result.stderr


def test_errno_action_with_errno_ret(env):
    result = run(env, config(["mkdir", "/tmp/x"], linux=seccomp(syscalls=[
        rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=errno.ENOSPC)])), check=False)
    assert result.returncode == 1 and "No space left on device" in result.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
                                    "SCMP_ACT_TRAP"])
def test_kill_and_trap_actions_end_the_workload_with_sigsys(env, action):
    result = run(env, config(["mkdir", "/tmp/x"], linux=seccomp(syscalls=[rule(["mkdir", "mkdirat"], action)])),
                 check=False)
    assert result.returncode == 128 + 31, result.stderr  # SIGSYS


def test_trace_action_without_a_tracer_fails_with_enosys(env):
    result = run(env, config(["mkdir", "/tmp/x"], linux=seccomp(syscalls=[
        rule(["mkdir", "mkdirat"], "SCMP_ACT_TRACE", errnoRet=7)])), check=False)
    assert result.returncode == 1 and "Function not implemented" in result.stderr


def test_log_action_allows(env):
    bundle = env.bundle(config=config(["mkdir", "/tmp/logged"], linux=seccomp(syscalls=[
        rule(["mkdir", "mkdirat"], "SCMP_ACT_LOG")])))
    env.rt("run", "--bundle", bundle, env.cid())
    assert os.path.isdir(os.path.join(bundle, "rootfs", "tmp", "logged"))


def test_default_errno_ret(env):
    result = run(env, config(["mkdir", "/tmp/x"], linux=seccomp(
        syscalls=[rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=errno.EROFS)],
        default="SCMP_ACT_ALLOW")), check=False)
    assert "Read-only file system" in result.stderr
    # an action that takes no errno with one is an error (runtime-spec: "MUST print and error and fail")
    assert_refused(env, config(["true"], linux=seccomp(defaultErrnoRet=1)), "defaultErrnoRet")


# -- allow lists -------------------------------------------------------------------------------

# What `busybox sh -c true` calls after the runtime's execve (found with strace).
BUSYBOX_SH = ["execve", "arch_prctl", "brk", "set_tid_address", "set_robust_list", "rseq", "prlimit64",
              "readlink", "getrandom", "mprotect", "prctl", "getuid", "getpid", "getppid", "rt_sigaction",
              "uname", "newfstatat", "exit_group"]


def test_default_deny_allow_list_runs_sh(env):
    cfg = config(["/bin/sh", "-c", "true"], linux=seccomp(
        default="SCMP_ACT_ERRNO", syscalls=[rule(BUSYBOX_SH, "SCMP_ACT_ALLOW")]))
    assert run(env, cfg, "true").returncode == 0
    # write(2) is not on the list: echo's output never arrives, and sh says so in its status
    cfg = config(["/bin/sh", "-c", "echo hello"], linux=seccomp(
        default="SCMP_ACT_ERRNO", syscalls=[rule(BUSYBOX_SH, "SCMP_ACT_ALLOW")]))
    result = run(env, cfg, "echo", check=False)
    assert result.stdout == "" and result.returncode == 1


def test_default_deny_without_no_new_privs_must_allow_the_runtimes_own_steps(env):
    """Without no_new_privs the filter is loaded before the user switch and
    the capability drop (it needs CAP_SYS_ADMIN), as with runc: the
    profile must allow those calls too, and sendto for a failure to be
    reported (as runc's profiles must allow its write to its sync pipe)."""
    steps = ["prctl", "capset", "setgroups", "setresgid", "setresuid", "umask"]
    cfg = config(["/bin/sh", "-c", "true"], noNewPrivileges=False, user={"uid": 1000, "gid": 1000},
                 linux=seccomp(default="SCMP_ACT_ERRNO", syscalls=[rule(BUSYBOX_SH + steps, "SCMP_ACT_ALLOW")]))
    assert run(env, cfg, "steps").returncode == 0
    cfg["linux"]["seccomp"]["syscalls"] = [rule(BUSYBOX_SH + ["sendto"], "SCMP_ACT_ALLOW")]
    result = run(env, cfg, "nosteps", check=False)
    assert result.returncode == 1 and "operation not permitted" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and os.listdir(env.root) == []


def test_filter_without_no_new_privs_for_a_user(env):
    out = output(env, config(["sh", "-c", "mkdir /tmp/x; echo rc=$?; cat /proc/self/status"],
                             noNewPrivileges=False, user={"uid": 1000, "gid": 1000},
                             linux=seccomp(syscalls=[DENY_MKDIR])))
    fields = status(out)
    assert out.startswith("rc=1\n")
    assert (fields["Seccomp"], fields["NoNewPrivs"], fields["Uid"].split()[0]) == ("2", "0", "1000")


# -- argument conditions -------------------------------------------------------------------------

CHMOD_MODES = (0o600, 0o700, 0o755)


@pytest.mark.parametrize("op, value, value_two, denied", [
    ("SCMP_CMP_EQ", 0o700, None, {0o700}),
    ("SCMP_CMP_NE", 0o700, None, {0o600, 0o755}),
    ("SCMP_CMP_LT", 0o700, None, {0o600}),
    ("SCMP_CMP_LE", 0o700, None, {0o600, 0o700}),
    ("SCMP_CMP_GT", 0o700, None, {0o755}),
    ("SCMP_CMP_GE", 0o700, None, {0o700, 0o755}),
    ("SCMP_CMP_MASKED_EQ", 0o077, 0, {0o600, 0o700}),  # value is the mask, valueTwo the datum
])
def test_argument_operators(env, op, value, value_two, denied):
    condition = {"index": 1, "value": value, "op": op}
    if value_two is not None:
        condition["valueTwo"] = value_two
    script = "touch /f; " + "; ".join(f"chmod {m:o} /f 2>/dev/null; echo $?" for m in CHMOD_MODES)
    out = output(env, config(["sh", "-c", script], linux=seccomp(syscalls=[
        rule(["chmod"], "SCMP_ACT_ERRNO", args=[condition])])))
    assert [m for m, rc in zip(CHMOD_MODES, out.split()) if rc != "0"] == sorted(denied)


def test_conditions_on_one_argument_are_ored(env):
    """runc's rule: libseccomp cannot AND two conditions on one argument, so
    each becomes a rule of its own."""
    script = "touch /f; " + "; ".join(f"chmod {m:o} /f 2>/dev/null; echo $?" for m in CHMOD_MODES)
    out = output(env, config(["sh", "-c", script], linux=seccomp(syscalls=[rule(["chmod"], "SCMP_ACT_ERRNO", args=[
        {"index": 1, "value": 0o600, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": 0o755, "op": "SCMP_CMP_EQ"}])])))
    assert out.split() == ["1", "0", "1"]


def test_personality_denied_only_for_one_argument(env):
    out = output(env, config(["sh", "-c", "linux32 true 2>/dev/null; echo $?; linux64 true; echo $?"],
                             linux=seccomp(syscalls=[rule(["personality"], "SCMP_ACT_ERRNO", args=[
                                 {"index": 0, "value": 0x0008, "op": "SCMP_CMP_EQ"}])])))
    assert out.split() == ["1", "0"]


def test_conditions_on_different_arguments_are_anded(env):
    """socket(AF_INET, SOCK_STREAM) is denied with EACCES; socket(AF_INET,
    SOCK_DGRAM) (nslookup) is not: it fails for want of a network."""
    af_inet, sock_stream, type_mask = 2, 1, 0xF  # the type argument carries SOCK_CLOEXEC and others above
    result = run(env, config(["sh", "-c", "nc 127.0.0.1 9 </dev/null; nslookup -timeout=1 x 127.0.0.1"],
                             linux=seccomp(syscalls=[rule(["socket"], "SCMP_ACT_ERRNO", errnoRet=errno.EACCES, args=[
                                 {"index": 0, "value": af_inet, "op": "SCMP_CMP_EQ"},
                                 {"index": 1, "value": type_mask, "valueTwo": sock_stream,
                                  "op": "SCMP_CMP_MASKED_EQ"}])])), check=False)
    lines = result.stderr.splitlines()
    assert "Permission denied" in lines[0], lines
    assert not any("Permission denied" in line for line in lines[1:]), lines


# -- names, architectures, flags ---------------------------------------------------------------

def test_unknown_syscall_names_are_skipped(env):
    result = run(env, config(["mkdir", "/tmp/x"], linux=seccomp(syscalls=[
        rule(["no_such_syscall", "mkdir", "mkdirat", "also_not_one"], "SCMP_ACT_ERRNO")])), check=False)
    assert result.returncode == 1 and EPERM_TEXT in result.stderr


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86 architectures")
def test_multi_architecture_filter_with_other_architectures_syscalls(env):
    """Docker's default profile names x86's syscalls (socketcall, _llseek)
    in an x86_64 + x86 + x32 filter."""
    cfg = config(["mkdir", "/tmp/x"], linux=seccomp(
        architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        syscalls=[rule(["socketcall", "_llseek", "waitpid"], "SCMP_ACT_ALLOW"), DENY_MKDIR]))
    result = run(env, cfg, check=False)
    assert result.returncode == 1 and EPERM_TEXT in result.stderr


def test_architecture_this_libseccomp_cannot_filter_is_refused(env):
    from sandbox.seccomp import supported_arches
    from specs.names import SECCOMP_ARCHES
    unsupported = sorted(set(SECCOMP_ARCHES) - set(supported_arches()))
    if not unsupported:
        pytest.skip("every architecture is supported here")
    assert_refused(env, config(["true"], linux=seccomp(architectures=[unsupported[0]])),
                   f"linux.seccomp.architectures: {unsupported[0]}", "is not supported")


def test_supported_flags_load(env):
    from sandbox.seccomp import FLAG_ATTRS
    result = run(env, config(["mkdir", "/tmp/x"], linux=seccomp(flags=sorted(FLAG_ATTRS), syscalls=[DENY_MKDIR])),
                 check=False)
    assert result.returncode == 1 and EPERM_TEXT in result.stderr


def test_spec_allow_flag_leaves_speculative_store_bypass_alone(env):
    """Without SECCOMP_FILTER_FLAG_SPEC_ALLOW the kernel (spec_store_bypass_disable=seccomp,
    the default) force-mitigates a filtered thread; with it, it does not."""
    key = "Speculation_Store_Bypass"
    without = status(output(env, config(["cat", "/proc/self/status"], linux=seccomp(syscalls=[DENY_MKDIR])),
                            "without"))[key]
    if "force mitigated" not in without:
        pytest.skip(f"this CPU/kernel does not mitigate seccomp threads ({without})")
    with_flag = status(output(env, config(["cat", "/proc/self/status"], linux=seccomp(
        flags=["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], syscalls=[DENY_MKDIR])), "with"))[key]
    assert "force mitigated" not in with_flag


def test_unsupported_flag_is_refused(env):
    from sandbox.seccomp import FLAG_ATTRS, KNOWN_FLAGS
    unsupported = sorted(set(KNOWN_FLAGS) - set(FLAG_ATTRS))
    if not unsupported:
        pytest.skip("every known flag is supported")
    assert_refused(env, config(["true"], linux=seccomp(flags=unsupported[:1])), unsupported[0], "is not supported")


@pytest.mark.parametrize("profile, needle", [
    (seccomp(syscalls=[rule(["mkdir"], "SCMP_ACT_KILL", errnoRet=1)]), "SCMP_ACT_KILL takes no errno"),
    (seccomp(syscalls=[rule(["mkdir"], "SCMP_ACT_NOTIFY")]), "needs linux.seccomp.listenerPath"),
    (seccomp(default="SCMP_ACT_BOGUS"), "linux.seccomp.defaultAction"),
    (seccomp(syscalls=[rule(["mkdir"], "SCMP_ACT_ERRNO", args=[{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}])]),
     "index"),
])
def test_bad_profiles_are_refused(env, profile, needle):
    assert_refused(env, config(["true"], linux=profile), needle)


# -- exec -----------------------------------------------------------------------------------------

def test_exec_runs_under_the_containers_filter(env):
    cid = env.cid()
    env.rt("run", "--detach", "--bundle", env.bundle(config=config(
        ["sleep", "1000"], linux=seccomp(syscalls=[DENY_MKDIR]))), cid)
    result = env.rt("exec", cid, "mkdir", "/tmp/x", check=False)
    assert result.returncode == 1 and EPERM_TEXT in result.stderr
    assert status(env.rt("exec", "--no-new-privs", cid, "cat", "/proc/self/status").stdout)["Seccomp"] == "2"
    env.rt("delete", "--force", cid)


# -- SCMP_ACT_NOTIFY ------------------------------------------------------------------------------

# linux/seccomp.h: _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
SECCOMP_IOCTL_NOTIF_RECV = 0xC0000000 | (80 << 16) | (ord("!") << 8) | 0
SECCOMP_IOCTL_NOTIF_SEND = 0xC0000000 | (24 << 16) | (ord("!") << 8) | 1
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
_NOTIF = struct.Struct("QIIiIQ6Q")   # id, pid, flags, data.nr, data.arch, data.instruction_pointer, data.args
_RESP = struct.Struct("QqiI")        # id, val, error, flags


def receive_notification(fd, timeout=10):
    """(id, pid, syscall number) of the next notification."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    assert poller.poll(timeout * 1000), "no seccomp notification arrived"
    buf = bytearray(_NOTIF.size)
    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
    notif_id, pid, _flags, nr, *_ = _NOTIF.unpack(buf)
    return notif_id, pid, nr


def respond(fd, notif_id, error=0, flags=0):
    fcntl.ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, bytearray(_RESP.pack(notif_id, 0, error, flags)), True)


@pytest.fixture
def listener(env):
    """A unix stream socket at the listenerPath, as a seccomp agent has."""
    path = os.path.join(env.tmp, "agent.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    sock.listen(4)
    sock.settimeout(10)
    yield path, sock
    sock.close()


def accept_state(sock):
    """The container process state and the fds of one connection."""
    conn, _ = sock.accept()
    with conn:
        conn.settimeout(10)
        data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 4)
        assert conn.recv(1) == b""  # one state per connection, then it is closed
    return json.loads(data), fds


def _notify_config(path, script):
    return config(["sh", "-c", script], linux=seccomp(
        syscalls=[rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY")], listenerPath=path, listenerMetadata="agent-meta"))


def test_notify_hands_the_listener_fd_to_the_agent_which_answers(env, listener):
    path, sock = listener
    rt, cid = env.rt, env.cid()
    script = ("mkdir /tmp/a 2>>/log; echo a=$? >>/log; mkdir /tmp/b; echo b=$? >>/log; "
              "mkdir /tmp/c 2>>/log; echo c=$? >>/log")
    bundle = env.bundle(config=_notify_config(path, script))
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    state, fds = accept_state(sock)
    assert len(fds) == 1
    fd = fds[0]
    try:
        assert os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:seccomp notify"
        assert state["fds"] == ["seccompFd"] and state["metadata"] == "agent-meta"
        assert state["state"]["id"] == cid and state["state"]["status"] == "running"
        assert state["pid"] == rt.state(cid)["pid"] or state["pid"] > 0
        assert "ociVersion" in state
        import pyseccomp
        mkdir_nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "mkdir")
        notif_id, pid, nr = receive_notification(fd)
        assert nr == mkdir_nr
        assert _in_container_of(pid, state["pid"])
        respond(fd, notif_id, error=-errno.ENOSPC)               # the agent refuses the first
        notif_id, _pid, _nr = receive_notification(fd)
        respond(fd, notif_id, flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)  # and lets the second run
    finally:
        os.close(fd)  # the third finds no agent: ENOSYS
    rt("wait", cid, timeout=20)
    rootfs = os.path.join(bundle, "rootfs")
    with open(os.path.join(rootfs, "log")) as f:
        log = f.read().splitlines()
    assert log == ["mkdir: can't create directory '/tmp/a': No space left on device", "a=1", "b=0",
                   "mkdir: can't create directory '/tmp/c': Function not implemented", "c=1"]
    assert os.path.isdir(os.path.join(rootfs, "tmp", "b")) and not os.path.exists(os.path.join(rootfs, "tmp", "a"))
    rt("delete", cid)


def _in_container_of(pid, workload_pid):
    """`pid` is the workload or one of its children (busybox may fork)."""
    if pid == workload_pid:
        return True
    with open(f"/proc/{pid}/status") as f:
        return status(f.read())["PPid"] == str(workload_pid)


def test_notify_for_an_exec_process(env, listener):
    path, sock = listener
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(config=_notify_config(path, "sleep 1000"))
    rt("run", "--detach", "--bundle", bundle, cid)
    state, fds = accept_state(sock)   # the container's process: nothing to answer
    for fd in fds:
        os.close(fd)
    rt("exec", "--detach", cid, "mkdir", "/tmp/by-exec")
    state, fds = accept_state(sock)
    try:
        assert state["fds"] == ["seccompFd"] and state["state"]["id"] == cid
        notif_id, pid, _nr = receive_notification(fds[0])
        assert pid == state["pid"]
        respond(fds[0], notif_id, flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)
    finally:
        for fd in fds:
            os.close(fd)
    wait_until(lambda: os.path.isdir(os.path.join(bundle, "rootfs", "tmp", "by-exec")), 10, "the exec's mkdir")
    # The detached exec's process is ours (the subreaper's) to reap, as it
    # is conmon's: until then the container's pid namespace cannot end.
    assert wait_for_exit(pid, 10)
    reap_orphans()
    rt("delete", "--force", cid)


def test_notify_on_execve_does_not_deadlock_start(env, listener):
    """A notified syscall on the way to execve (execve itself here) waits
    for the agent: the fd must reach it before the exec completes."""
    path, sock = listener
    rt, cid = env.rt, env.cid()
    cfg = config(["/bin/true"], linux=seccomp(syscalls=[rule(["execve"], "SCMP_ACT_NOTIFY")], listenerPath=path))
    rt("create", "--bundle", env.bundle(config=cfg), cid)
    rt("start", cid, timeout=20)
    state, fds = accept_state(sock)
    try:
        notif_id, _pid, _nr = receive_notification(fds[0])
        respond(fds[0], notif_id, flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE)
    finally:
        for fd in fds:
            os.close(fd)
    assert json.loads(rt("wait", cid, timeout=20).stdout)["exitStatus"] == 0
    rt("delete", cid)


def test_unreachable_listener_fails_start_and_leaves_nothing(env):
    assert_refused(env, _notify_config(os.path.join(env.tmp, "nobody-listens.sock"), "true"),
                   "linux.seccomp.listenerPath")
