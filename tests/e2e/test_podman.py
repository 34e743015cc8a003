"""podman running containers with the runtime under test: what users see
(output, exit codes, signals, terminals, mounts, users) through podman's
calls to the runtime (create/start/exec/kill/pause/resume/delete)."""

import os
import time

import pytest

from tests.e2e.images import IMAGE
from tests.e2e.workloads import EXITS_7_ON_TERM, IGNORES_TERM, LOOP
from tests.support.runtime import wait_until

# what podman bind-mounts as /run/podman-init for --init (its default init_path)
CATATONIT = "/usr/libexec/podman/catatonit"
needs_catatonit = pytest.mark.skipif(not os.path.exists(CATATONIT),
                                     reason=f"{CATATONIT} missing (apt-get install catatonit)")


def wait_ready(podman, name):
    wait_until(lambda: "ready" in podman("logs", name).stdout.split(), 30, f"{name} to be ready")


def inspect(podman, name, template):
    return podman("inspect", "--format", template, name).stdout.strip()


def exists(podman, name) -> bool:
    return podman("container", "exists", name, check=False).returncode == 0


def processes(podman, name) -> list:
    """The argv of each process in the container, from `podman top`."""
    rows = podman("top", name, "pid", "args").stdout.splitlines()
    assert rows[0].split() == ["PID", "COMMAND"], rows
    return [row.split()[1:] for row in rows[1:]]


def wait_for_process(podman, name, argv):
    wait_until(lambda: argv in processes(podman, name), 30, f"{' '.join(argv)} to run in {name}")


def runtime_state_of(root, cid) -> list:
    """The runtime's files (named with the id) for container `cid` in `root`."""
    return [e for e in os.listdir(root) if cid in e] if os.path.isdir(root) else []


def read_count(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):  # not written yet, or caught mid-write
        return None


def test_run_rm_prints_exact_stdout(podman):
    result = podman.run("--rm", IMAGE, "echo", "hello", "world")
    assert result.stdout == "hello world\n"
    assert podman("ps", "--all", "--quiet", "--filter", f"name={podman.token}").stdout == ""


def test_exit_code_propagates(podman):
    assert podman.run("--rm", IMAGE, "sh", "-c", "exit 42", check=False).returncode == 42


def test_missing_executable_exits_127(podman):
    # podman maps the runtime's "no such file or directory" (or "executable
    # file not found") error from create to 127, as a shell would
    result = podman.run("--rm", IMAGE, "/no/such/program", check=False)
    assert result.returncode == 127, result.stderr
    assert "/no/such/program" in result.stderr


def test_exec_into_detached_container(podman, runtime):
    name = podman.detach(IMAGE, "sh", "-c", LOOP)
    assert inspect(podman, name, "{{.OCIRuntime}}") == runtime.path
    wait_ready(podman, name)
    result = podman("exec", "-e", "E2E_VAR=from-exec", "-w", "/etc", name,
                    "sh", "-c", 'echo "$E2E_VAR in $(pwd)"; exit 3', check=False)
    assert (result.returncode, result.stdout) == (3, "from-exec in /etc\n"), result.stderr
    assert inspect(podman, name, "{{.State.Status}}") == "running"


def test_exec_with_tty(podman):
    name = podman.detach(IMAGE, "sh", "-c", LOOP)
    wait_ready(podman, name)
    result = podman("exec", "-t", name, "sh", "-c", "test -t 0 && test -t 1 && echo tty-ok")
    # a terminal's output processing turns \n into \r\n
    assert result.stdout == "tty-ok\r\n"


def test_stop_delivers_sigterm_then_rm(podman):
    name = podman.detach(IMAGE, "sh", "-c", EXITS_7_ON_TERM)
    wait_ready(podman, name)
    started = time.monotonic()
    podman("stop", "--time", "30", name)
    assert time.monotonic() - started < 20, "stop waited for its timeout: SIGTERM was not delivered"
    assert inspect(podman, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 7"
    assert "got-term" in podman("logs", name).stdout.split()
    podman("rm", name)
    assert not exists(podman, name)


def test_stop_kills_workload_that_ignores_sigterm(podman):
    name = podman.detach(IMAGE, "sh", "-c", IGNORES_TERM)
    wait_ready(podman, name)
    started = time.monotonic()
    podman("stop", "--time", "1", name)
    elapsed = time.monotonic() - started
    assert 1 <= elapsed < 20, f"stop --time 1 took {elapsed:.1f}s"
    assert inspect(podman, name, "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"


def test_kill_usr1_reaches_workload(podman):
    name = podman.detach(IMAGE, "sh", "-c", "trap 'echo got-usr1' USR1; " + LOOP)
    wait_ready(podman, name)
    podman("kill", "--signal", "USR1", name)
    wait_until(lambda: "got-usr1" in podman("logs", name).stdout.split(), 30, "the USR1 trap's output")
    assert inspect(podman, name, "{{.State.Status}}") == "running"


def test_pause_and_unpause(podman, test_dir):
    count = test_dir / "count"
    name = podman.detach("-v", f"{test_dir}:/out", IMAGE, "sh", "-c",
                         "i=0; while :; do i=$((i+1)); echo $i > /out/count; sleep 0.05; done")
    wait_until(lambda: read_count(count), 30, "the counter to start")

    podman("pause", name)
    assert inspect(podman, name, "{{.State.Status}}") == "paused"
    frozen = read_count(count)
    # that nothing happens cannot be waited for: watch for a while
    time.sleep(0.5)
    assert read_count(count) == frozen, "the container kept running while paused"

    podman("unpause", name)
    assert inspect(podman, name, "{{.State.Status}}") == "running"
    wait_until(lambda: (read_count(count) or 0) > (frozen or 0), 30, "the counter to resume")


def test_top_lists_the_workload(podman):
    name = podman.detach(IMAGE, "sh", "-c", "sleep 1000 & sleep 2000")
    wait_for_process(podman, name, ["sleep", "1000"])
    assert ["sleep", "2000"] in processes(podman, name)


def test_run_tty_under_a_real_terminal(podman):
    result = podman.run_in_terminal("--rm", "-t", IMAGE, "sh", "-c",
                                    "test -t 0 && test -t 1 && echo tty-ok; exit 5")
    assert result.returncode == 5, result.stdout + result.stderr
    assert result.stdout == "tty-ok\r\n"


def test_bind_mount_read_write(podman, test_dir):
    (test_dir / "in.txt").write_text("from the host\n")
    result = podman.run("--rm", "-v", f"{test_dir}:/data", IMAGE, "sh", "-c",
                        "cat /data/in.txt; echo from the container > /data/out.txt")
    assert result.stdout == "from the host\n"
    assert (test_dir / "out.txt").read_text() == "from the container\n"


def test_bind_mount_read_only(podman, test_dir):
    result = podman.run("--rm", "-v", f"{test_dir}:/data:ro", IMAGE, "touch", "/data/new", check=False)
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    assert not (test_dir / "new").exists()


def test_user_env_and_workdir(podman):
    result = podman.run("--rm", "--user", "1000:1000", "-e", "E2E_GREETING=hello", "-w", "/tmp", IMAGE,
                        "sh", "-c", 'id -u; id -g; echo "$E2E_GREETING"; pwd')
    assert result.stdout == "1000\n1000\nhello\n/tmp\n"


@needs_catatonit
def test_init_runs_the_workload_under_catatonit(podman):
    result = podman.run("--rm", "--init", IMAGE, "sh", "-c", "cat /proc/$PPID/cmdline")
    assert result.stdout.split("\0")[:3] == ["/run/podman-init", "--", "sh"]


@needs_catatonit
def test_init_is_pid_1(podman):
    """With --init, catatonit is PID 1 of the container, as with runc."""
    result = podman.run("--rm", "--init", IMAGE, "cat", "/proc/1/cmdline")
    assert result.stdout.split("\0")[:3] == ["/run/podman-init", "--", "cat"]


@needs_catatonit
def test_init_forwards_sigterm_on_stop(podman):
    # a bare sleep as PID 1 (under runc) would ignore SIGTERM; catatonit as
    # the init forwards it
    name = podman.detach("--init", IMAGE, "sleep", "1000")
    # once catatonit has started sleep, it forwards signals
    wait_for_process(podman, name, ["sleep", "1000"])
    started = time.monotonic()
    podman("stop", "--time", "30", name)
    assert time.monotonic() - started < 20, "stop waited for its timeout: SIGTERM was not forwarded"
    assert inspect(podman, name, "{{.State.ExitCode}}") == "143"


def test_rm_force_removes_running_container(podman, runtime):
    name = podman.detach(IMAGE, "sh", "-c", EXITS_7_ON_TERM)
    wait_ready(podman, name)
    cid = inspect(podman, name, "{{.Id}}")
    podman("rm", "--force", name)
    assert not exists(podman, name)
    assert runtime_state_of(runtime.default_root, cid) == []


def test_runtime_registered_by_name(podman, runtime):
    # containers.conf's [engine.runtimes] maps the name to the binary
    result = podman.run("--rm", IMAGE, "echo", "by", "name", runtime=runtime.name)
    assert result.stdout == "by name\n"
