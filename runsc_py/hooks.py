"""Running OCI hooks.

runtime-spec config.md, POSIX-platform hooks: `path` is absolute and
resolved in the runtime namespace (for createContainer and startContainer:
"the path MUST resolve in the runtime namespace" / "in the container
namespace"); `args` has execv's argv semantics (argv[0] included); `env`
is the whole environment; `timeout` is in seconds; the hook gets "the state
of the container" on stdin.

Only os, select, runsc_py.jsonio and runsc_py.linux.signals are used, all loaded by the
sandbox before pivot_root: it runs startContainer hooks after it, where no
further module can be imported.
"""

import os
import select
import time

from . import jsonio
from .linux import signals


class HookFailure(Exception):
    """A hook that failed: `name` says which (`poststart[0] /path`),
    `detail` how (`exit status 3: <its last line of output>`)."""

    def __init__(self, name, detail):
        super().__init__(f"{name}: {detail}")
        self.detail = detail


def _spawn(hook, stdin_data):
    argv = list(hook.args) or [hook.path]
    env = {}
    for item in hook.env:
        key, _, value = item.partition("=")
        env[key] = value
    rfd, wfd = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(rfd, 0)
            os.dup2(err_w, 1)  # as runc: the hook's output becomes the error text
            os.dup2(err_w, 2)
            os.close(rfd)
            os.close(wfd)
            os.close(err_r)
            os.close(err_w)
            os.execve(hook.path, argv, env)
        except BaseException as e:
            try:
                os.write(2, f"exec: {getattr(e, 'strerror', None) or e}".lower().encode())
            finally:
                os._exit(127)
    os.close(rfd)
    os.close(err_w)
    try:
        os.write(wfd, stdin_data)
    except BrokenPipeError:
        pass  # the hook does not read its stdin
    finally:
        os.close(wfd)
    return pid, err_r


def run_hook(kind, index, hook, state: dict):
    """Run one hook to completion; HookFailure naming it otherwise."""
    name = f"{kind}[{index}] {hook.path}"
    pid, out_r = _spawn(hook, jsonio.dumps(state).encode())
    pidfd = os.pidfd_open(pid)
    output = bytearray()
    deadline = None if hook.timeout is None else time.monotonic() + hook.timeout
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        poller.register(out_r, select.POLLIN)
        exited = False
        while not exited:
            left = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            events = poller.poll(left)
            if not events:
                signals.pidfd_send_signal(pidfd, signals.SIGKILL)
                os.waitpid(pid, 0)
                raise HookFailure(name, f"timeout executing hook (after {hook.timeout}s)")
            for fd, _ in events:
                if fd == out_r:
                    data = os.read(out_r, 65536)
                    if data:
                        output += data
                        del output[:-4000]  # keep the tail: the error is at the end
                    else:
                        poller.unregister(out_r)
                else:
                    exited = True
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(pidfd)
        os.close(out_r)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        text = output.decode(errors="replace").strip()
        detail = text.splitlines()[-1] if text else ""
        how = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        raise HookFailure(name, how + (f": {detail}" if detail else ""))


def run_hooks(kind, hooks, state):
    """Run the hooks of one kind in order; the first failure stops them."""
    for index, hook in enumerate(hooks):
        run_hook(kind, index, hook, state)


def run_hooks_warning(kind, hooks, state, log):
    """For poststart and poststop, runtime-spec runtime.md (v1.0.2 to
    v1.2.1): "If any poststart hook fails, the runtime MUST log a warning,
    but the remaining hooks and lifecycle continue as if the hook had
    succeeded" (the same sentence for poststop). The warning has runc's
    shape: `error running poststart hook #0: ...`."""
    for index, hook in enumerate(hooks):
        try:
            run_hook(kind, index, hook, state)
        except HookFailure as e:
            log.warning(f"error running {kind} hook #{index} ({hook.path}): {e.detail}")
        except OSError as e:  # the runtime could not even spawn it (fork, pipe)
            from .errors import os_error_text
            log.warning(f"error running {kind} hook #{index} ({hook.path}): {os_error_text(e)}")


_KINDS = {"prestart": "prestart", "createRuntime": "create_runtime", "createContainer": "create_container",
          "startContainer": "start_container", "poststart": "poststart", "poststop": "poststop"}


def hooks_of(spec_raw: dict):
    """The Hooks of a spec snapshot (validated when the container was
    created), without validating the whole document again."""
    from specs.model import Hook, Hooks
    raw = spec_raw.get("hooks") or {}
    kwargs = {}
    for key, field in _KINDS.items():
        kwargs[field] = tuple(Hook(path=h["path"], args=tuple(h.get("args") or ()),
                                   env=tuple(h.get("env") or ()), timeout=h.get("timeout"))
                              for h in raw.get(key) or ())
    return Hooks(**kwargs)


def kinds_present(hooks) -> list:
    """The hook kinds a spec has (kept in the record: start and delete then
    read and parse the spec snapshot only when there is a hook to run)."""
    return [kind for kind, field in _KINDS.items() if getattr(hooks, field)]


def may_have(record, kind) -> bool:
    kinds = record.get("hookKinds")
    return kinds is None or kind in kinds  # a record without the list: look in the spec
