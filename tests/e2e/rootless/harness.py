"""Unprivileged users for the rootless tests, made from root, idempotently.

Each test user has an /etc/subuid and /etc/subgid range (newuidmap and
newgidmap check them), and the runtime is run from a virtualenv made from
Debian's /usr/bin/python3 with this checkout installed: the set-up's own
.venv may link to an interpreter under /root (mode 0700), which no other
user can execute.
"""

import os
import pwd
import shutil
import subprocess

from tests.e2e.commands import run
from tests.e2e.runtime_under_test import REPO

VICTIM = "runscpy-rootless"    # runs rootless podman and the runtime by hand
OTHER = "runscpy-rootless2"    # another local user: the one who plants a root
SUBID_COUNT = 65536
SUBID_FLOOR = 100000
SYSTEM_PYTHON = "/usr/bin/python3"
VENV = REPO / ".venv-rootless"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SETUP_TIMEOUT = 300


def ensure_user(name: str) -> pwd.struct_passwd:
    """The user `name`, with a home and subordinate id ranges."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/sh", name], timeout=60)
        entry = pwd.getpwnam(name)
    for path, flag in (("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")):
        ranges = _subid_ranges(path)
        if not any(owner in (name, str(entry.pw_uid)) for owner, _start, _count in ranges):
            start = max([SUBID_FLOOR] + [s + c for _o, s, c in ranges])
            run(["usermod", flag, f"{start}-{start + SUBID_COUNT - 1}", name], timeout=60)
    return entry


def subid_range(path: str, name: str) -> tuple:
    """(start, count) of the first range `name` has in /etc/subuid or subgid."""
    uid = str(pwd.getpwnam(name).pw_uid)
    for owner, start, count in _subid_ranges(path):
        if owner in (name, uid):
            return start, count
    raise LookupError(f"{name} has no range in {path}")


def _subid_ranges(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    out.append((parts[0], int(parts[1]), int(parts[2])))
    except FileNotFoundError:
        pass
    return out


def user_runtime() -> str:
    """runsc-py installed from this checkout into a venv every user can run."""
    binary = VENV / "bin" / "runsc-py"
    if not binary.exists() or not _venv_is_this_checkout():
        shutil.rmtree(VENV, ignore_errors=True)
        run([SYSTEM_PYTHON, "-m", "venv", str(VENV)], timeout=SETUP_TIMEOUT)
        # compat mode: a plain path entry in a .pth file (as tests/setup.sh)
        run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-e", str(REPO),
             "--config-settings", "editable_mode=compat"], timeout=SETUP_TIMEOUT)
    # The users cannot write bytecode into the checkout: it is compiled here.
    run([str(VENV / "bin" / "python"), "-m", "compileall", "-q", *(str(REPO / p) for p in
        ("runsc_py", "sandbox", "gofer", "specs"))], timeout=SETUP_TIMEOUT)
    return str(binary)


def _venv_is_this_checkout():
    try:
        out = subprocess.run([str(VENV / "bin" / "python"), "-c", "import runsc_py; print(runsc_py.__file__)"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().startswith(str(REPO) + "/")


def reachable_by_others(path) -> bool:
    """Whether every directory above `path` lets other users through."""
    path = os.path.abspath(path)
    while path != "/":
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & 0o001:
            return False
    return True


class User:
    """Commands run as one unprivileged user, with a clean environment."""

    def __init__(self, entry: pwd.struct_passwd, xdg_runtime_dir=None):
        self.name = entry.pw_name
        self.uid = entry.pw_uid
        self.gid = entry.pw_gid
        self.home = entry.pw_dir
        self.xdg_runtime_dir = xdg_runtime_dir

    def env(self, **extra) -> list:
        values = {"HOME": self.home, "USER": self.name, "LOGNAME": self.name, "PATH": PATH}
        if self.xdg_runtime_dir:
            values["XDG_RUNTIME_DIR"] = self.xdg_runtime_dir
        values.update(extra)
        return [f"{k}={v}" for k, v in values.items() if v is not None]

    def argv(self, *argv, cwd=None, **env) -> list:
        inner = ["env", "-i", *self.env(**env), *argv]
        if cwd:
            inner = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(cwd), *inner]
        return ["runuser", "-u", self.name, "--", *inner]

    def __call__(self, *argv, timeout=60, check=True, cwd=None, **env):
        return run(self.argv(*argv, cwd=cwd, **env), timeout=timeout, check=check)

    def own(self, path):
        """Give `path` (a tree made by root for this user) to the user."""
        for top, dirs, files in os.walk(path):
            for name in [top, *(os.path.join(top, n) for n in dirs + files)]:
                os.lchown(name, self.uid, self.gid)

    def processes(self) -> list:
        """Pids of every process running as this user or one of its
        subordinate uids (real uid). Zombies are not running: those that
        are ours (pytest may be a subreaper, to which an exited container's
        processes are reparented) are reaped."""
        start, count = subid_range("/etc/subuid", self.name)
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open(f"/proc/{name}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                uid = int(fields["Uid"].split()[0])
            except (OSError, ValueError, KeyError):
                continue
            if not (uid == self.uid or start <= uid < start + count):
                continue
            if fields.get("State", "").split()[:1] == ["Z"]:
                _reap(int(name))
                continue
            found.append(int(name))
        return found


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # another process's zombie: its parent reaps it
