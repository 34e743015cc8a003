"""run = create + start, then (attached) wait, forward signals, delete.

Attached, the CLI makes itself a child subreaper before create, so the
sandbox is reparented to it and reaped by it; every catchable signal the CLI
receives is forwarded to the sandbox, which forwards it to the workload.
The CLI exits with the workload's status."""

import os

from ..errors import Failure
from ..linux import proc, signals
from . import load
from .create import create
from .destroy import destroy
from .start import start
from .wait import wait

_NOT_FORWARDED = {signals.SIGKILL, signals.SIGSTOP, signals.SIGCHLD}


def run(root, cid, bundle, detach=False, keep=False, **create_args) -> int:
    proxy = None
    if not detach:
        import prctl
        prctl.set_child_subreaper(True)
        if not create_args.get("console_socket"):
            from ..console import ConsoleProxy
            proxy = ConsoleProxy()
    try:
        create(root, cid, bundle, console_proxy=proxy, **create_args)
        try:
            if proxy is not None and proxy.used:
                proxy.receive()
            else:
                proxy = _discard(proxy)
            start(root, cid)
        except BaseException:
            if not keep:
                _cleanup(root, cid)
            raise
        if detach:
            return 0
        try:
            return _attached(root, cid, proxy)
        finally:
            if not keep:
                _cleanup(root, cid)
    finally:
        _discard(proxy)


def _discard(proxy):
    if proxy is not None:
        proxy.close()


def _attached(root, cid, proxy):
    sb = load(root, cid).sandbox
    pid, start_time = sb["pid"], sb["startTime"]
    fd = proc.pidfd_for(pid, start_time)
    if proxy is not None and fd is not None:
        proxy.copy_until(fd)

    def forward(signum, _frame):
        if fd is not None:
            try:
                signals.pidfd_send_signal(fd, signum)
            except ProcessLookupError:
                pass

    previous = {}
    for sig in signals.valid_signals():
        if sig not in _NOT_FORWARDED:
            try:
                previous[sig] = signals.signal(sig, forward)
            except (OSError, ValueError):
                pass
    try:
        status = wait(root, cid)
    finally:
        # Before the pidfd is closed: a signal during the cleanup must not
        # go through a closed fd whose number is reused (a hook's pipe or
        # pidfd).
        for sig, handler in previous.items():
            signals.signal(sig, handler)
        if fd is not None:
            os.close(fd)
        _reap_children()
    return status


def _reap_children():
    """As subreaper the orphaned sandbox is ours to collect."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _cleanup(root, cid):
    try:
        destroy(root, cid, force=True)
    except Failure:
        pass
    _reap_children()
