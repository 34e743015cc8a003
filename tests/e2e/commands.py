"""Running engine commands from tests: always bounded, output captured."""

import os
import shlex
import subprocess
import tempfile


class CommandFailed(AssertionError):
    """A command exited non-zero (or timed out) where the test needed success."""


def run(argv, *, timeout, check=True, env=None, stdin=subprocess.DEVNULL):
    """Run `argv` to completion within `timeout` seconds; its stdout and
    stderr go through files, not pipes: daemons an engine starts (conmon,
    a shim) may inherit them, and a pipe they hold open would keep the
    caller waiting until they exit."""
    argv = [str(a) for a in argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.run(argv, timeout=timeout, env=env, stdin=stdin, stdout=out, stderr=err)
        except subprocess.TimeoutExpired:
            raise CommandFailed(f"timed out after {timeout}s: {' '.join(argv)}\n"
                                f"stdout: {_read(out)}\nstderr: {_read(err)}") from None
        result = subprocess.CompletedProcess(argv, proc.returncode, _read(out), _read(err))
    if check and result.returncode != 0:
        raise CommandFailed(f"exit status {result.returncode}: {' '.join(argv)}\n"
                            f"stdout: {result.stdout}\nstderr: {result.stderr}")
    return result


def run_in_terminal(argv, *, timeout, env=None):
    """Run `argv` with a pseudo-terminal as its stdin, stdout and stderr, as
    from an interactive shell (script(1) provides it); its exit status is
    that of `argv`, its output what the terminal showed."""
    # script's input is a pipe that stays open: at the end of its input,
    # script would type the terminal's end-of-file character to `argv`
    never_written, writer = os.pipe()
    try:
        return run(["script", "--quiet", "--return", "--command", shlex.join(argv), "/dev/null"],
                   timeout=timeout, check=False, env=env, stdin=never_written)
    finally:
        os.close(never_written)
        os.close(writer)


def _read(f) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")
