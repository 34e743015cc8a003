"""How fast runsc-py starts for each way users install it.

Run from the repository root, as root, after the set-up:

    .venv/bin/python tests/bench/install_paths.py [--rounds N] [--out bench-out]

Installs this checkout four ways, each into its own temp dir:

  setup       the README's set-up (tests/setup.sh: .venv, editable, compiled)
  pip         `python -m venv` + `pip install .` with the venv's own pip
              (Python 3.11's venv brings pip 23, whose entry-point template
              imports `re`; runsc-py ships its own launcher for that reason)
  wheel       `pip wheel` once, then `pip install the.whl` into a fresh venv
  pipx        `pipx install .` (pipx itself from PyPI, in a temp venv)

then times `runsc-py --version` and `runsc-py state ID` of one created
container (the same root for all: every install runs the same code) per
install, interleaved round by round, and prints a markdown table (also
written to OUT/install-paths.md). What differs between the rows is what
the installer adds at start-up: its launcher, and .pth files of the venv.
"""

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from specs.default import default_spec  # noqa: E402
from tests.support.busybox import make_rootfs  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
BASE_PYTHON = os.environ.get("PYTHON", "python3")
QUIET = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE}


def _run(argv, **kw):
    done = subprocess.run(argv, **QUIET, **kw)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace').strip()[-500:]}")


def install_pip(base):
    venv = os.path.join(base, "pip")
    _run([BASE_PYTHON, "-m", "venv", venv])
    _run([f"{venv}/bin/pip", "install", "-q", REPO])
    return f"{venv}/bin/runsc-py"


def install_wheel(base):
    wheels = os.path.join(base, "wheels")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, REPO])
    venv = os.path.join(base, "wheel")
    _run([BASE_PYTHON, "-m", "venv", venv])
    wheel = [os.path.join(wheels, n) for n in os.listdir(wheels) if n.startswith("runsc_py")][0]
    _run([f"{venv}/bin/pip", "install", "-q", wheel])
    return f"{venv}/bin/runsc-py"


def install_pipx(base):
    tools = os.path.join(base, "pipx-tool")
    _run([BASE_PYTHON, "-m", "venv", tools])
    _run([f"{tools}/bin/pip", "install", "-q", "pipx"])
    env = dict(os.environ, PIPX_HOME=os.path.join(base, "pipx-home"), PIPX_BIN_DIR=os.path.join(base, "pipx-bin"),
               PIPX_MAN_DIR=os.path.join(base, "pipx-man"))
    _run([f"{tools}/bin/pipx", "install", REPO], env=env)
    return os.path.join(base, "pipx-bin", "runsc-py")


def launcher_of(path):
    """The first lines of an installed launcher, for the report."""
    with open(path) as f:
        return "; ".join(line.strip() for line in f.read().splitlines()[1:] if line.strip()
                         and not line.startswith("#"))[:80]


def once_ms(argv):
    begin = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - begin) * 1000


def bundle_in(base):
    bundle = os.path.join(base, "bundle")
    make_rootfs(os.path.join(bundle, "rootfs"))
    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["sleep", "1000"]
    import json
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f)
    return bundle


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--out", default=os.path.join(REPO, "bench-out"))
    args = p.parse_args(argv)
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    base = tempfile.mkdtemp(prefix="runsc-py-install-")
    root = os.path.join(base, "root")
    setup = os.path.join(REPO, ".venv", "bin", "runsc-py")
    installs = {"setup": setup}
    try:
        for name, install in (("pip", install_pip), ("wheel", install_wheel), ("pipx", install_pipx)):
            print(f"installing: {name}", file=sys.stderr, flush=True)
            installs[name] = install(base)
        # The container's stdio is create's: not a pipe, which it would hold open.
        with tempfile.TemporaryFile() as err:
            if subprocess.run([setup, "--root", root, "create", "--bundle", bundle_in(base), "probe"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err).returncode:
                err.seek(0)
                raise SystemExit(f"create failed: {err.read().decode(errors='replace').strip()}")
        try:
            times = {name: {"--version": [], "state": []} for name in installs}
            for _ in range(args.rounds):  # interleaved: machine drift hits all alike
                for name, exe in installs.items():
                    times[name]["--version"].append(once_ms([exe, "--version"]))
                    times[name]["state"].append(once_ms([exe, "--root", root, "state", "probe"]))
        finally:
            subprocess.run([setup, "--root", root, "delete", "--force", "probe"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        launchers = {name: launcher_of(exe) for name, exe in installs.items()}
    finally:
        _reap()
        shutil.rmtree(base, ignore_errors=True)
    lines = [f"medians of {args.rounds} rounds", "", "| install | --version | state | launcher |", "|---|---|---|---|"]
    for name, t in times.items():
        lines.append(f"| {name} | {statistics.median(t['--version']):.1f} ms | {statistics.median(t['state']):.1f} ms"
                     f" | `{launchers[name]}` |")
    table = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "install-paths.md"), "w") as f:
        f.write(table)
    print(table, end="")
    return 0


def _reap(within=10.0):
    """The container's sandbox and gofer were reparented to us (subreaper):
    reap them once `delete --force` has killed them, bounded."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
