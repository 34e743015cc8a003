"""The command line: the fast parser and click agree, flags and signals
parse like runc's, and every bad input is one line and a non-zero exit."""

import os
import signal
import subprocess
import sys

import pytest

from runsc_py import cli
from runsc_py.container.kill import parse_signal
from runsc_py.errors import Failure

RUNTIME = [sys.executable, "-m", "runsc_py"]


def click_parse(argv):
    """What click makes of argv: (globals, command module, values)."""
    from runsc_py.cli import clickcli
    captured = {}

    def fake_run(g, module, values):
        captured.update(g=g, module=module, values=values)
        return 0

    original = clickcli.run_command
    clickcli.run_command = fake_run
    try:
        clickcli.click_main(argv)
    finally:
        clickcli.run_command = original
    return captured["g"], captured["module"], captured["values"]


ENGINE_FORMS = [
    ["--root", "/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "--pid-file", "/p", "c1"],
    ["--root=/r", "--log=/l", "--log-format=json", "--systemd-cgroup", "create", "-b", "/b", "--console-socket", "/s", "c1"],
    ["create", "--bundle", "/b", "--pid-file", "/p", "--no-pivot", "--no-new-keyring", "--preserve-fds", "2", "c1"],
    ["start", "c1"],
    ["state", "c1"],
    ["--root", "/r", "kill", "c1", "9"],
    ["kill", "--all", "c1", "SIGKILL"],
    ["kill", "c1"],
    ["delete", "--force", "c1"],
    ["delete", "c1"],
    ["exec", "--process", "/p.json", "--detach", "--pid-file", "/pid", "c1"],
    ["exec", "-t", "c1", "sh", "-c", "ls -la"],
    ["exec", "--env", "A=1", "-e", "B=2", "c1", "env"],
    ["ps", "--format", "json", "c1"],
    ["ps", "c1", "-o", "pid,comm"],
    ["list", "-q"],
    ["list", "--format", "json"],
    ["run", "-d", "--bundle", "/b", "c1"],
    ["run", "--keep", "c1"],
    ["update", "--resources", "-", "c1"],
    ["update", "--memory", "100M", "--pids-limit", "5", "c1"],
    ["events", "--stats", "c1"],
    ["spec", "--rootless"],
    ["wait", "c1"],
    ["features"],
    ["pause", "c1"],
]


@pytest.mark.parametrize("argv", ENGINE_FORMS, ids=lambda a: " ".join(a))
def test_fast_parser_agrees_with_click(argv):
    fast_g, fast_module, fast_values = cli._fast_parse(argv)
    click_g, click_module, click_values = click_parse(argv)
    assert fast_module is click_module
    assert fast_values == click_values
    assert vars(fast_g) == vars(click_g)


@pytest.mark.parametrize("argv", [
    ["--help"], ["create"], ["create", "--bogus", "c"], ["kill"], ["state", "a", "b"],
    ["--root"], ["nosuch"], ["create", "-bx", "c"], [], ["--log-format", "xml", "state", "c"],
])
def test_unusual_forms_fall_back_to_click(argv):
    with pytest.raises(cli._Fallback):
        cli._fast_parse(argv)


@pytest.mark.parametrize("text,number", [
    ("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15), ("term", 15), ("15", 15),
    ("USR1", signal.SIGUSR1), ("SIGRTMIN+1", signal.SIGRTMIN + 1), ("RTMAX-0", signal.SIGRTMAX),
    ("SIGWINCH", signal.SIGWINCH),
])
def test_signal_forms(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["", "0x9", "SIGNOPE", "999", "-1", "SIGRTMIN+99", "KILL9"])
def test_bad_signals(text):
    with pytest.raises(Failure, match="invalid signal"):
        parse_signal(text)


def runtime(*args, root):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd()}
    return subprocess.run(RUNTIME + ["--root", str(root), *args], capture_output=True, text=True,
                          timeout=30, env=env)


BAD_INPUT = [
    ["state"], ["state", "../x"], ["state", "missing"], ["start", "missing"], ["kill", "missing"],
    ["kill", "missing", "NOPE"], ["delete", "missing"], ["delete", "a/b"], ["wait", "missing"],
    ["ps", "missing"], ["exec", "missing", "true"], ["pause", "missing"], ["resume", "missing"],
    ["events", "missing"], ["update", "missing"], ["create", "--bundle", "/nonexistent", "c"],
    ["create", "--bundle", "/nonexistent", "bad/id"], ["run", "--bundle", "/nonexistent", "c"],
    ["nosuch"], ["create", "--bogus"], ["list", "--format", "xml"], ["kill", "--all"],
    ["spec", "--bundle", "/nonexistent/dir"], ["create", "--preserve-fds", "x", "c"],
]


@pytest.mark.parametrize("argv", BAD_INPUT, ids=lambda a: " ".join(a))
def test_bad_input_is_one_line_and_non_zero(argv, tmp_path):
    result = runtime(*argv, root=tmp_path / "root")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("runsc-py: ")
    assert not (tmp_path / "root").exists() or os.listdir(tmp_path / "root") == []


def test_missing_container_wording(tmp_path):
    result = runtime("state", "ghost", root=tmp_path)
    assert result.stderr.strip() == 'runsc-py: container "ghost" does not exist'
    assert runtime("delete", "--force", "ghost", root=tmp_path).returncode == 0


def test_version_and_help(tmp_path):
    version = runtime("--version", root=tmp_path)
    assert version.returncode == 0 and "runsc-py version" in version.stdout
    for args in (["-v"], ["--version"]):
        out = subprocess.run(RUNTIME + args, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and out.stdout.startswith("runsc-py version")
    helped = runtime("--help", root=tmp_path)
    assert helped.returncode == 0 and "create" in helped.stdout and "exec" in helped.stdout
    sub = runtime("create", "--help", root=tmp_path)
    assert sub.returncode == 0 and "--bundle" in sub.stdout


def test_log_file_gets_json_error_lines(tmp_path):
    log = tmp_path / "log.json"
    subprocess.run(RUNTIME + ["--root", str(tmp_path), "--log", str(log), "--log-format", "json",
                              "state", "ghost"], capture_output=True, timeout=30)
    import json
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == 'container "ghost" does not exist'
    assert entry["time"].endswith("Z")


def test_cli_import_is_lean():
    """Importing the CLI loads no click, filelock, psutil, ctypes or specs."""
    code = ("import sys, runsc_py.cli; "
            "bad = [m for m in ('click', 'filelock', 'psutil', 'ctypes', 'specs.config', 'prctl') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[]"


def test_state_path_is_lean(tmp_path):
    """`state` on the fast path imports no click, ctypes or spec validation."""
    code = ("import sys, runsc_py.cli as c; c.main(['--root', sys.argv[1], 'state', 'x']); "
            "print([m for m in ('click', 'filelock', 'psutil', 'ctypes', 'specs.config') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip().splitlines()[-1] == "[]"
