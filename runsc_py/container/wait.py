"""wait: block until the container's process exits; its exit status.

The sandbox reports the status to the gofer, which writes it to the
`.exit` file before the sandbox exits; so once the sandbox's pidfd says it
is gone, the file is there (or the sandbox was killed: 137)."""

import os
from ..linux.signals import SIGKILL

from ..errors import Failure
from ..linux import proc
from . import load


def wait(root, cid, timeout=None) -> int:
    container = load(root, cid)
    sb = container.sandbox
    fd = proc.pidfd_for(sb.get("pid"), sb.get("startTime"))
    if fd is not None:
        try:
            if not proc.wait_pidfd(fd, timeout):
                raise Failure(f'container "{cid}" did not exit within {timeout}s')
        finally:
            os.close(fd)
    status = container.sf.read_exit()
    if status is None:
        # No recorded status: the sandbox died by SIGKILL (delete --force,
        # the OOM killer, an administrator), and with it the workload.
        return 128 + SIGKILL
    return status
