"""The VM stage: tests that need a pure cgroup v2 host, run in a guest.

The CI host has hybrid cgroups (v1 controllers, an empty cgroup2), so the
cgroup v2 code of the runtime is proven in a small VM instead: the
Debian kernel (apt `linux-image-amd64`) booted by qemu (apt
`qemu-system-x86`) through virtme-ng (PyPI `virtme-ng`, installed by
tests/setup.sh into its own venv, `.venv-vm/`), with `cgroup_no_v1=all`
on the kernel command line: /sys/fs/cgroup is cgroup2 holding every
controller (cpuset cpu io memory hugetlb pids rdma misc) and no systemd
runs. The guest sees the host's root read-only over 9p, so the checkout
and its `.venv` are used in place; a results folder (a fresh host temp
dir) is shared read-write.

Entry points (both keep this interface: other stages build on it):

    bash tests/vm/run.sh [PYTEST ARGS...]   pytest inside the guest, in the
        checkout this file lives in; without arguments the v2 selection
        (DEFAULT_SELECTION). Prints the guest's output as it comes, then
        "VM stage: <pytest's summary line>"; exits with pytest's status.
    bash tests/vm/run.sh --cmd 'SHELL COMMAND'   any command in the guest,
        run by bash in the checkout; exits with its status.

    python -m tests.vm.harness ...          the same, from Python;
    tests.vm.harness.run_in_guest(command, timeout) -> Result (rc, output).

Options before the arguments: --timeout SECONDS (the whole guest, boot
included; default 1200), --memory (default 2G), --cpus (default 2).

In the guest (tests/vm/guest.sh): TMPDIR is a tmpfs (unix sockets cannot
live on 9p, so every test's --root is local), loop devices exist
(`modprobe loop`), 16 huge pages of 2 MB are reserved, and
RUNSC_PY_VM_GUEST=1 tells tests they are in the guest (tests/vm/conftest.py
skips the v2 tests elsewhere).

Bounded: KVM is probed with a short timeout (nested KVM fails or hangs on
some hosts) and the guest falls back to qemu's TCG; a guest that outlives
--timeout is killed with its qemu, and the stage fails saying so. The
exit status comes from a file the guest writes, not from qemu: a guest
that dies without writing it is a failure too.
"""

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS_BIN = os.path.join(CHECKOUT, ".venv-vm", "bin")
GUEST_SCRIPT = os.path.join(CHECKOUT, "tests", "vm", "guest.sh")
DEFAULT_TIMEOUT = 1200
KVM_PROBE_TIMEOUT = 10
# The v2 tests, and those integration tests of cgroups that are skipped on
# the hybrid host or take their v2 branch here (the whole file would not
# fit the stage's time under TCG).
_CGROUP_TESTS = "tests/integration/test_cgroups.py::"
DEFAULT_SELECTION = ["tests/vm"] + [_CGROUP_TESTS + name for name in (
    "test_v2_controller_files",                      # memory, pids, cpu, io: skipped on the host
    "test_memory_limit_read_back_and_oom_kill_reported",
    "test_cpu_quota_and_shares_visible_and_throttling_counted",
    "test_pause_freezes_and_resume_thaws",
    "test_delete_removes_only_the_cgroups_create_made",
)]
# the python of the checkout's venv (tests/setup.sh makes it)
PYTHON = os.path.join(CHECKOUT, ".venv", "bin", "python")


@dataclass
class Result:
    rc: int           # the command's exit status; 124 on timeout, 125 if the guest never reported
    output: str       # what the guest printed (console and command)
    seconds: float
    accel: str        # "kvm" or "tcg"
    results_dir: str  # the shared folder (kept when keep=True)


def kernel():
    """The newest installed Debian kernel image with its modules."""
    release = os.environ.get("RUNSC_PY_VM_KERNEL")
    if release:
        return release
    images = sorted((f for f in os.listdir("/boot") if f.startswith("vmlinuz-")
                     and os.path.isdir(f"/lib/modules/{f[len('vmlinuz-'):]}")), key=_version_key)
    if not images:
        raise SystemExit("VM stage: no /boot/vmlinuz-* with its /lib/modules (apt install linux-image-amd64)")
    return os.path.join("/boot", images[-1])


def _version_key(name):
    return [int(n) for n in re.findall(r"\d+", name)]


def vng():
    path = os.path.join(TOOLS_BIN, "vng")
    if not os.access(path, os.X_OK):
        raise SystemExit(f"VM stage: {path} is missing (bash tests/setup.sh installs virtme-ng)")
    return path


def kvm_works(image, timeout=KVM_PROBE_TIMEOUT):
    """Boot the kernel under KVM with the CPU model virtme-ng asks for and
    wait for its first console line. Nested KVM may refuse (an MSR qemu
    cannot set) or hang without output: either way, TCG."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    argv = ["qemu-system-x86_64", "-machine", "accel=kvm", "-cpu", "host,topoext=on", "-m", "128",
            "-nodefaults", "-nographic", "-no-reboot", "-serial", "stdio", "-kernel", image,
            "-append", "console=ttyS0 panic=-1"]
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        return False
    deadline = time.monotonic() + timeout
    seen = b""
    try:
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() < deadline and proc.poll() is None:
            chunk = proc.stdout.read() or b""
            seen += chunk
            if b"Linux version" in seen:
                return True
            time.sleep(0.1)
        return False
    finally:
        _kill_group(proc)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_in_guest(command, timeout=DEFAULT_TIMEOUT, memory="2G", cpus=2, keep=False, echo=True):
    """Run the bash `command` in the guest, in the checkout; a Result."""
    image = kernel()
    accel = "kvm" if kvm_works(image) else "tcg"
    results = tempfile.mkdtemp(prefix="runsc-py-vm-")
    with open(os.path.join(results, "command.sh"), "w") as f:
        f.write(command + "\n")
    argv = [vng(), "--run", image, "--force-9p", "--cpus", str(cpus), "--memory", memory,
            "--append", "cgroup_no_v1=all", "--rwdir", results]
    if accel == "tcg":
        argv.append("--disable-kvm")
    argv += ["--", f"bash {shlex.quote(GUEST_SCRIPT)} {shlex.quote(results)} {shlex.quote(CHECKOUT)}"]
    envp = dict(os.environ, PATH=f"{TOOLS_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=envp, start_new_session=True)
    output, timed_out = _collect(proc, start + timeout, echo)
    seconds = time.monotonic() - start
    rc = _guest_status(results)
    if timed_out:
        rc = 124
        output += f"\nVM stage: the guest ran longer than {timeout}s and was killed\n"
    elif rc is None:
        rc = 125
        output += f"\nVM stage: the guest exited (vng status {proc.returncode}) without reporting a status\n"
    result = Result(rc, output, seconds, accel, results)
    if not keep:
        shutil.rmtree(results, ignore_errors=True)
    return result


def _collect(proc, deadline, echo):
    """The guest's output until it exits or the deadline; (text, timed_out)."""
    import selectors
    chunks = []
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(proc)
                return "".join(chunks), True
            if not sel.select(min(left, 5)):
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            text = data.decode(errors="replace")
            chunks.append(text)
            if echo:
                sys.stdout.write(text)
                sys.stdout.flush()
        try:
            proc.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return "".join(chunks), True
        _kill_group(proc)  # anything of it left (qemu helpers)
        return "".join(chunks), False
    finally:
        sel.close()
        proc.stdout.close()


def _guest_status(results):
    try:
        with open(os.path.join(results, "status")) as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


_SUMMARY = re.compile(r"^=*\s*(\d+ (passed|failed|error|errors|skipped|deselected|xfailed|xpassed|warnings?)"
                      r"\b.*? in [\d.]+s.*?)\s*=*\s*$")


def pytest_summary(output):
    """pytest's last summary line in the output ('5 passed, 1 skipped in 3.2s'), or None."""
    found = None
    for line in output.splitlines():
        m = _SUMMARY.match(line.strip())
        if m:
            found = m.group(1)
    return found


def pytest_command(args):
    # by default each test is named with its time: the report of the stage
    args = list(args) or ["-v", "--durations=0", "-rfEs", *DEFAULT_SELECTION]
    # hypothesis is not used in the guest, and its plugin costs seconds of
    # imports over 9p
    argv = [PYTHON, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args]
    return " ".join(shlex.quote(a) for a in argv)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tests/vm/run.sh", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--cmd", help="a shell command to run in the guest instead of pytest")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--cpus", type=int, default=2)
    opts, rest = parser.parse_known_args(argv)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    command = opts.cmd if opts.cmd is not None else pytest_command(rest)
    result = run_in_guest(command, opts.timeout, opts.memory, opts.cpus)
    print(f"VM stage: {result.accel}, {result.seconds:.0f}s, exit status {result.rc}")
    if opts.cmd is None:
        print(f"VM stage: {pytest_summary(result.output) or 'no pytest summary line (see the output above)'}")
    return result.rc


if __name__ == "__main__":
    sys.exit(main())
