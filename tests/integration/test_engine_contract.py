"""The contract engines rely on, as recorded from podman 4.3 (conmon) and
containerd 1.6 (runc v2 shim) driving runc: flag forms, roots, logs,
wording, silence on success, exec and ps as they call them."""

import json
import os
import subprocess
import tempfile

from tests.support.runtime import RUNTIME, reap_orphans, wait_for_exit


def bare_run(argv, cwd="/", env=None, timeout=30):
    """The CLI with an almost empty environment (no HOME, no PATH,
    XDG_RUNTIME_DIR empty) from an arbitrary directory; stdio in files."""
    environment = {"XDG_RUNTIME_DIR": "", "PYTHONPATH": os.getcwd()} if env is None else env
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.run(RUNTIME + argv, cwd=cwd, env=environment, stdout=out, stderr=err, timeout=timeout)
        reap_orphans()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, proc.returncode, out.read().decode(), err.read().decode())


def test_bare_environment_flag_forms_and_silence(env):
    """Global flags as --flag value and --flag=value; a missing root is
    created; state/start/kill/ps/delete say nothing on stderr."""
    root = os.path.join(env.tmp, "made", "by", "create")
    cid = env.cid()
    bundle = env.bundle(["sh", "-c", "trap true USR1; while true; do sleep 1; done"])
    log = os.path.join(env.tmp, "log.json")
    created = bare_run([f"--root={root}", "--log", log, "--log-format=json", "create", "--bundle", bundle,
                        "--pid-file", os.path.join(env.tmp, "pid"), cid], cwd=env.tmp)
    assert created.returncode == 0 and created.stderr == "", created.stderr
    for argv in (["start", cid], ["state", cid], ["kill", cid, "10"], ["ps", "--format", "json", cid]):
        result = bare_run(["--root", root, *argv])
        assert result.returncode == 0 and result.stderr == "", (argv, result.stderr)
    pid = int(open(os.path.join(env.tmp, "pid")).read())
    assert bare_run(["--root", root, "kill", cid, "9"]).stderr == ""
    assert wait_for_exit(pid, 10)
    deleted = bare_run(["--root", root, "delete", cid])
    assert deleted.returncode == 0 and deleted.stderr == ""
    assert os.listdir(root) == []


def test_failure_goes_to_stderr_and_the_log_as_json(env):
    log = os.path.join(env.tmp, "sub", "log.json")
    os.makedirs(os.path.dirname(log))
    result = bare_run(["--root", env.root, "--log", log, "--log-format", "json", "start", "ghost"])
    assert result.returncode == 1
    assert result.stderr == 'runsc-py: container "ghost" does not exist\n'
    entries = [json.loads(line) for line in open(log)]
    assert entries[-1]["level"] == "error" and entries[-1]["msg"] == 'container "ghost" does not exist'


def test_delete_force_of_unknown_id_and_recreate(env):
    rt, cid = env.rt, env.cid()
    assert rt("delete", "--force", "never-was").returncode == 0
    bundle = env.bundle(["true"])
    for _ in range(2):
        rt("create", "--bundle", bundle, cid)
        rt("delete", "--force", cid)
    assert os.listdir(env.root) == []


def test_wording_engines_map_to_exit_codes(env):
    rt = env.rt
    missing = rt("create", "--bundle", env.bundle(["/no/such/binary"]), env.cid("a"), check=False)
    assert missing.returncode == 1 and "no such file or directory" in missing.stderr
    not_found = rt("create", "--bundle", env.bundle(["nosuchcommand"]), env.cid("b"), check=False)
    assert not_found.returncode == 1 and "executable file not found" in not_found.stderr
    cid = env.cid("c")
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    pid = rt.state(cid)["pid"]
    rt("kill", cid, "9")
    assert wait_for_exit(pid, 10)
    stopped = rt("kill", cid, "15", check=False)
    assert stopped.returncode == 1 and "container not running" in stopped.stderr
    unknown = rt("kill", env.cid("nope"), "15", check=False)
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
    rt("delete", cid)


def test_exec_process_file_detached_with_pid_file(env):
    """conmon/the shim: exec --process F --detach --pid-file P ID; the exec'd
    process is reparented to the caller (a subreaper) and its exit status is
    the caller's to collect."""
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    # It outlives the call, so that it is still ours to wait for.
    process = {"args": ["sh", "-c", "echo $FOO $(id -u) $(pwd) > /tmp/exec.out; sleep 1; exit 3"], "cwd": "/tmp",
               "env": ["FOO=bar", "PATH=/bin:/usr/bin"], "user": {"uid": 0, "gid": 0}, "terminal": False}
    process_file = os.path.join(env.tmp, "process.json")
    with open(process_file, "w") as f:
        json.dump(process, f)
    pid_file = os.path.join(env.tmp, "exec.pid")
    # exec into a created container works (runc does too).
    rt("exec", "--process", process_file, "--detach", "--pid-file", pid_file, cid)
    pid = int(open(pid_file).read())
    _, status = os.waitpid(pid, 0)  # we are its subreaper, like conmon
    assert os.waitstatus_to_exitcode(status) == 3
    rootfs = json.loads(rt("state", cid).stdout)["rootfs"]
    assert open(os.path.join(rootfs, "tmp", "exec.out")).read() == "bar 0 /tmp\n"
    rt("delete", "--force", cid)


def test_exec_attached_flags_and_stopped_container(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    rt("start", cid)
    out = rt("exec", "--cwd", "/tmp", "-e", "A=1", "--env", "B=2", "--user", "65534:65534", cid,
             "sh", "-c", "echo $A$B $(pwd) $(id -u):$(id -g)").stdout
    assert out == "12 /tmp 65534:65534\n"
    code = rt("exec", cid, "sh", "-c", "exit 42", check=False).returncode
    assert code == 42
    pid = rt.state(cid)["pid"]
    rt("kill", cid, "KILL")
    assert wait_for_exit(pid, 10)
    stopped = rt("exec", cid, "true", check=False)
    assert stopped.returncode == 1 and "container not running" in stopped.stderr
    rt("delete", cid)


def test_ps_json_is_host_pids_and_table_is_ps_output(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sh", "-c", "sleep 1000 & sleep 1001"]), cid)
    rt("start", cid)
    sandbox = rt.state(cid)["pid"]

    def workload_seen():
        pids = json.loads(rt("ps", "--format", "json", cid).stdout)
        return len(pids) >= 3 and pids  # the sandbox and both sleeps (sh may exec the last)
    from tests.support.runtime import wait_until
    wait_until(workload_seen, 10, "the workload's processes")
    pids = workload_seen()
    assert sandbox in pids
    for pid in pids:  # host pids: each one's NSpid starts with itself
        with open(f"/proc/{pid}/status") as f:
            nspid = next(line for line in f if line.startswith("NSpid:")).split()[1:]
        assert int(nspid[0]) == pid
    table = rt("ps", cid).stdout.splitlines()
    assert table[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert any("sleep 1001" in line for line in table[1:])
    custom = rt("ps", cid, "-o", "pid,comm").stdout.splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    rt("delete", "--force", cid)


def test_ps_table_without_procps(env):
    """Hosts without ps(1): the default table comes from psutil; other
    formats are refused in one line."""
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    rt("start", cid)
    no_ps = {"PATH": "/nonexistent", "PYTHONPATH": os.getcwd()}
    table = bare_run(["--root", env.root, "ps", cid], env=no_ps)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = {int(line.split()[1]): line for line in lines[1:]}
    assert set(rows) == set(json.loads(rt("ps", "--format", "json", cid).stdout))
    assert any(line.endswith("sleep 1000") for line in rows.values())
    custom = bare_run(["--root", env.root, "ps", cid, "-o", "pid"], env=no_ps)
    assert custom.returncode == 1 and "ps command is not installed" in custom.stderr
    rt("delete", "--force", cid)


def test_kill_all_signals_every_process(env):
    rt, cid = env.rt, env.cid()
    rt("create", "--bundle", env.bundle(["sh", "-c", "trap '' TERM; sleep 1000 & sleep 1001 & wait"]), cid)
    rt("start", cid)
    sandbox = rt.state(cid)["pid"]
    rt("kill", "--all", cid, "9")
    assert wait_for_exit(sandbox, 10)
    assert rt.status(cid) == "stopped"
    rt("delete", cid)


def test_list_formats(env):
    rt = env.rt
    ids = [env.cid(f"l{i}") for i in range(3)]
    for cid in ids:
        rt("create", "--bundle", env.bundle(["sleep", "1000"]), cid)
    assert rt("list", "-q").stdout.split() == sorted(ids)
    rows = json.loads(rt("list", "--format", "json").stdout)
    assert [r["id"] for r in rows] == sorted(ids) and all(r["status"] == "created" for r in rows)
    table = rt("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert len(table) == 4
    for cid in ids:
        rt("delete", cid)
    assert rt("list", "-q").stdout == ""
