"""The container lifecycle on the real kernel: create, start, state, kill,
delete, run, wait — statuses, exit codes, signals, reaping."""

import json
import os
import time

from tests.support.runtime import wait_for_exit, wait_until


def rootfs(bundle, *parts):
    return os.path.join(bundle, "rootfs", *parts)


def test_lifecycle_statuses_and_args_not_run_before_start(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sh", "-c", "echo ran > /tmp/marker; sleep 1000"])
    pid_file = os.path.join(env.tmp, "pid")
    rt("create", "--bundle", bundle, "--pid-file", pid_file, cid)
    state = rt.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid and state["bundle"] == bundle
    assert int(open(pid_file).read()) == state["pid"] > 0
    time.sleep(0.2)
    assert not os.path.exists(rootfs(bundle, "tmp", "marker")), "process.args ran before start"

    rt("start", cid)
    assert rt.status(cid) == "running"
    wait_until(lambda: os.path.exists(rootfs(bundle, "tmp", "marker")), 10, "the workload's marker")

    rt("kill", cid, "KILL")
    assert wait_for_exit(state["pid"], 10)
    assert rt.status(cid) == "stopped"
    assert rt.state(cid)["pid"] == 0
    rt("delete", cid)
    missing = rt("state", cid, check=False)
    assert missing.returncode == 1 and f'container "{cid}" does not exist' in missing.stderr


def test_start_twice_and_start_missing(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    rt("start", cid)
    again = rt("start", cid, check=False)
    assert again.returncode == 1 and "not created" in again.stderr
    missing = rt("start", env.cid("nope"), check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    rt("delete", "--force", cid)


def test_run_exit_codes(env):
    for code in (0, 1, 42):
        result = env.rt("run", "--bundle", env.bundle(["sh", "-c", f"exit {code}"]), env.cid(f"e{code}"),
                        check=False)
        assert result.returncode == code, result.stderr
    # The workload is PID 1 of its namespace: as with runc, the kernel drops
    # a signal it sends itself without a handler, SIGKILL included.
    ignored = env.rt("run", "--bundle", env.bundle(["sh", "-c", "kill -9 $$; exit 3"]), env.cid("self"),
                     check=False)
    assert ignored.returncode == 3, ignored.stderr
    cid = env.cid("k9")
    running = env.rt.popen("run", "--bundle", env.bundle(["sleep", "60"]), cid)
    try:
        wait_for_status(env, cid, "running")
        env.rt("kill", cid, "KILL")
        assert running.wait(timeout=20) == 137  # 128 + SIGKILL, mirrored by the sandbox
    finally:
        running.kill()
        running.wait()


def wait_for_status(env, cid, status, timeout=20):
    import json
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = env.rt("state", cid, check=False)
        if result.returncode == 0 and json.loads(result.stdout)["status"] == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{cid} never became {status}")


def test_run_stdout_reaches_caller(env):
    result = env.rt("run", "--bundle", env.bundle(["echo", "hello", "world"]), env.cid())
    assert result.stdout == "hello world\n"


def test_wait_reports_exit_status(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sh", "-c", "exit 42"]), cid)
    rt("start", cid)
    out = rt("wait", cid, timeout=20)
    assert json.loads(out.stdout) == {"id": cid, "exitStatus": 42}
    assert rt.status(cid) == "stopped"
    rt("delete", cid)


def test_signal_forwarding_to_trapping_workload(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sh", "-c", "trap 'echo got-term > /tmp/t; exit 7' TERM; "
                                     "touch /tmp/ready; while true; do sleep 0.1; done"])
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    wait_until(lambda: os.path.exists(rootfs(bundle, "tmp", "ready")), 10, "the trap to be set")
    rt("kill", cid, "TERM")
    out = rt("wait", cid, timeout=20)
    assert json.loads(out.stdout)["exitStatus"] == 7
    assert open(rootfs(bundle, "tmp", "t")).read() == "got-term\n"
    rt("delete", cid)


def test_kill_signal_forms(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    rt("start", cid)
    for form in ("0", "SIGCONT", "cont", "18"):
        rt("kill", cid, form)
    bad = rt("kill", cid, "SIGNOPE", check=False)
    assert bad.returncode == 1 and "invalid signal" in bad.stderr
    pid = rt.state(cid)["pid"]
    rt("kill", cid, "9")
    assert wait_for_exit(pid, 10)
    stopped = rt("kill", cid, "TERM", check=False)
    assert stopped.returncode == 1 and "container not running" in stopped.stderr
    rt("delete", cid)


def test_kill_created_container_stops_it(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    pid = rt.state(cid)["pid"]
    rt("kill", cid, "TERM")
    assert wait_for_exit(pid, 10)
    assert rt.status(cid) == "stopped"
    rt("delete", cid)


def test_zombies_are_reaped(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sh", "-c", "for i in $(seq 50); do (sleep 0.01 &) ; done; sleep 1; "
                                     "ps -o stat | grep -c Z > /tmp/zombies; sleep 1000"])
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    wait_until(lambda: os.path.exists(rootfs(bundle, "tmp", "zombies")), 20, "the zombie count")
    wait_until(lambda: open(rootfs(bundle, "tmp", "zombies")).read().strip() != "", 5, "the count")
    assert open(rootfs(bundle, "tmp", "zombies")).read().strip() == "0"
    rt("delete", "--force", cid)


def test_delete_running_needs_force(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    rt("start", cid)
    pid = rt.state(cid)["pid"]
    refused = rt("delete", cid, check=False)
    assert refused.returncode == 1 and "running" in refused.stderr
    rt("delete", "--force", cid)
    assert wait_for_exit(pid, 5)
    again = rt("delete", cid, check=False)
    assert again.returncode == 1 and "does not exist" in again.stderr
    assert rt("delete", "--force", cid).returncode == 0


def test_create_same_id_twice(env):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sleep", "1000"])
    rt("create", "--bundle", bundle, cid)
    dup = rt("create", "--bundle", bundle, cid, check=False)
    assert dup.returncode == 1 and "already exists" in dup.stderr
    rt("delete", cid)
    rt("create", "--bundle", bundle, cid)
    rt("delete", cid)


def test_hostname_and_namespaces(env):
    bundle = env.bundle(["sh", "-c", "hostname; echo $$; ls /proc | grep -c '^[0-9]'"])
    from tests.support.busybox import read_config, write_config
    config = read_config(bundle)
    config["hostname"] = "box"
    write_config(bundle, config)
    out = env.rt("run", "--bundle", bundle, env.cid()).stdout.split()
    assert out[0] == "box"
    assert out[1] == "1"          # the workload is PID 1; the sandbox is outside
    assert int(out[2]) == 3       # only the container's: sh, ls, grep


def test_proc_1_is_the_workload_after_create_start_and_for_exec(env):
    """The workload is PID 1 of its pid namespace (as with runc): its
    /proc/1/cmdline is process.args, for itself and for an exec'd process;
    nothing of the runtime is in the container's /proc."""
    cid = env.cid()
    env.rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    env.rt("start", cid)
    seen = env.rt("exec", cid, "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$; "
                                           "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout.splitlines()
    assert seen[0].strip() == "sleep 1000"
    assert int(seen[1]) > 1
    assert "runsc-py" not in seen[2]
    env.rt("delete", "--force", cid)


def _status(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_sandbox_and_gofer_confine_themselves_once_created(env):
    """After create, the sandbox keeps only CAP_KILL and the gofer no
    capability; both have no_new_privs and a seccomp filter (mode 2), and
    the lifecycle still works under them."""
    cid = env.cid()
    env.rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    record = _record(env, cid)
    # Each confines itself when it receives create's commit, sent just before create exits.
    for pid in (record["sandbox"]["pid"], record["gofer"]["pid"]):
        wait_until(lambda: _status(pid)["Seccomp"] == "2", 10, f"process {pid} to confine itself")
    sandbox, gofer = _status(record["sandbox"]["pid"]), _status(record["gofer"]["pid"])
    assert int(sandbox["CapEff"], 16) == 1 << 5 and int(sandbox["CapBnd"], 16) == 1 << 5
    assert int(gofer["CapEff"], 16) == 0 and int(gofer["CapBnd"], 16) == 0
    for status in (sandbox, gofer):
        assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "1"
    env.rt("start", cid)
    assert env.rt("exec", cid, "echo", "in").stdout == "in\n"
    env.rt("pause", cid)
    env.rt("resume", cid)
    env.rt("kill", cid, "KILL")
    assert json.loads(env.rt("wait", cid, timeout=20).stdout)["exitStatus"] == 137
    env.rt("delete", cid)


def _record(env, cid):
    for name in os.listdir(env.root):
        if name.startswith(f"{cid}_sandbox:") and name.endswith(".state"):
            with open(os.path.join(env.root, name)) as f:
                return json.load(f)
    raise AssertionError(f"no record of {cid}")


def test_start_container_hook_runs_with_the_processs_privileges(env):
    """As with runc (1.1, checked by running it): the startContainer hook
    runs in the container as the process's user, with its capabilities and
    no_new_privs, not as the runtime's root."""
    from tests.support.busybox import read_config, write_config
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    os.chmod(out, 0o777)
    bundle = env.bundle(["true"])
    config = read_config(bundle)
    config["process"]["user"] = {"uid": 1000, "gid": 1000}
    config["process"]["capabilities"] = {kind: ["CAP_KILL"] for kind in ("bounding", "effective", "permitted")}
    config["process"]["noNewPrivileges"] = True
    config["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]})
    script = "{ id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status; } > /out/hook"
    config["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]}
    write_config(bundle, config)
    env.rt("run", "--bundle", bundle, env.cid())
    lines = open(os.path.join(out, "hook")).read().split("\n")
    assert lines[0] == "1000"
    fields = dict(line.split(":\t") for line in lines[1:] if line)
    # The process's bounding set; no effective capability after the hook's
    # execve as a non-root user without ambient ones (runc shows the same).
    assert int(fields["CapBnd"], 16) == 1 << 5 and int(fields["CapEff"], 16) == 0
    assert fields["NoNewPrivs"] == "1"
