"""Signals without the signal module.

Importing signal builds enums of every signal and handler (enum and
functools with them): ~3 ms of every CLI call that touches a signal. Its C
module, _signal, has the same functions, with plain ints for numbers; they
are what the runtime uses, re-exported here."""

import _signal
from _signal import (NSIG, SIG_BLOCK, SIG_DFL, SIG_SETMASK, SIGCHLD, SIGCONT, SIGKILL, SIGPIPE,  # noqa: F401
                     SIGRTMAX, SIGRTMIN, SIGSTOP, SIGTERM, SIGURG, SIGWINCH, pidfd_send_signal,
                     pthread_sigmask, set_wakeup_fd, signal, sigtimedwait, valid_signals)


def by_name(name: str):
    """The number of `SIGNAME` (aliases such as SIGIOT included), or None."""
    if not name.startswith("SIG") or name.startswith("SIG_"):
        return None
    number = getattr(_signal, name, None)
    return number if isinstance(number, int) and 0 < number < NSIG else None
