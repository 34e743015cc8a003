"""Fault points for crash-injection tests.

`RUNSC_PY_FAULT=<step>` makes the CLI SIGKILL itself when it reaches that
step (e.g. `create:after-gofer-fork`), the way an engine killed mid-call
would. The variable is read once; when it is unset, a fault point costs one
dictionary lookup."""

import os

_ARMED = os.environ.get("RUNSC_PY_FAULT")


def point(step):
    if _ARMED is not None and _ARMED == step:
        from ..linux.signals import SIGKILL
        os.kill(os.getpid(), SIGKILL)
