"""containerd (through ctr and the runc shim) running containers with the
runtime under test: output, exit codes, exec, signals, pause, ps, ttys."""

import re
import time

from tests.e2e.workloads import EXITS_7_ON_TERM, IGNORES_TERM, LOOP
from tests.support.runtime import wait_until



def detach(containerd, log, *command) -> str:
    """`ctr run -d` of `command`, its output going to the file `log` (the
    shim writes it: nobody reads a detached task's stdio otherwise)."""
    cid = containerd.new_id()
    containerd.run(cid, *command, options=["--detach", "--log-uri", f"file://{log}"])
    return cid


def log_words(log) -> list:
    try:
        with open(log) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def wait_for_output(log, word):
    wait_until(lambda: word in log_words(log), 30, f"{word!r} in {log}")


def exit_code_on_delete(containerd, cid) -> int:
    """`ctr task delete` of a stopped task; the exit code it reports (it
    warns about non-zero ones only)."""
    result = containerd.ctr("task", "delete", cid)
    match = re.search(r"exit code (\d+)", result.stderr)
    return int(match.group(1)) if match else 0


def test_run_rm_prints_exact_stdout(containerd):
    result = containerd.run(containerd.new_id(), "echo", "hello", options=["--rm"])
    assert result.stdout == "hello\n"


def test_exit_code_propagates(containerd):
    result = containerd.run(containerd.new_id(), "sh", "-c", "exit 42", options=["--rm"], check=False)
    assert result.returncode == 42, result.stderr


def test_detached_exec_kill_delete(containerd, test_dir):
    log = test_dir / "out.log"
    cid = detach(containerd, log, "sh", "-c", EXITS_7_ON_TERM)
    wait_for_output(log, "ready")
    assert containerd.task_status(cid) == "RUNNING"

    result = containerd.ctr("task", "exec", "--exec-id", "x1", "--cwd", "/etc", cid,
                            "sh", "-c", 'echo "exec in $(pwd)"; exit 3', check=False)
    assert (result.returncode, result.stdout) == (3, "exec in /etc\n"), result.stderr

    containerd.ctr("task", "kill", cid)  # SIGTERM
    containerd.wait_for_status(cid, "STOPPED")
    assert "got-term" in log_words(log)
    assert exit_code_on_delete(containerd, cid) == 7
    assert containerd.task_status(cid) == ""
    containerd.ctr("container", "rm", cid)


def test_kill_sigkill_stops_workload_that_ignores_sigterm(containerd, test_dir):
    log = test_dir / "out.log"
    cid = detach(containerd, log, "sh", "-c", IGNORES_TERM)
    wait_for_output(log, "ready")
    containerd.ctr("task", "kill", "--signal", "KILL", cid)
    containerd.wait_for_status(cid, "STOPPED")
    assert exit_code_on_delete(containerd, cid) == 137


def test_pause_and_resume(containerd, test_dir):
    log = test_dir / "out.log"
    cid = detach(containerd, log, "sh", "-c", "while :; do echo tick; sleep 0.05; done")
    wait_for_output(log, "tick")

    containerd.ctr("task", "pause", cid)
    assert containerd.task_status(cid) == "PAUSED"
    frozen = len(log_words(log))
    # that nothing happens cannot be waited for: watch for a while
    time.sleep(0.5)
    assert len(log_words(log)) == frozen, "the task kept running while paused"

    containerd.ctr("task", "resume", cid)
    assert containerd.task_status(cid) == "RUNNING"
    wait_until(lambda: len(log_words(log)) > frozen, 30, "the task to run again")


def test_task_ps_lists_the_workload(containerd, test_dir):
    log = test_dir / "out.log"
    cid = detach(containerd, log, "sh", "-c", "sleep 1000 & " + LOOP)
    wait_for_output(log, "ready")
    rows = containerd.ctr("task", "ps", cid).stdout.splitlines()
    assert rows[0].split() == ["PID", "INFO"]
    commands = [host_cmdline(row.split()[0]) for row in rows[1:]]
    assert "sleep 1000" in commands, commands


def host_cmdline(pid) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode()
    except FileNotFoundError:  # one of the loop's short sleeps, gone already
        return ""


def test_run_tty_under_a_real_terminal(containerd):
    result = containerd.run_in_terminal(containerd.new_id(), "sh", "-c",
                                        "test -t 0 && test -t 1 && echo tty-ok; exit 5",
                                        options=["--rm", "--tty"])
    assert result.returncode == 5, result.stdout + result.stderr
    # ctr leaves its own terminal's output processing on: the container's
    # "\r\n" arrives as "\r\r\n"
    assert result.stdout.replace("\r", "") == "tty-ok\n"
