"""Handing a seccomp notification fd to the listener the spec names.

runtime-spec config-linux.md, seccomp `listenerPath`: the runtime connects
to this UNIX socket and sends the container process state (runtime.md,
"Container Process State") with the listener fd as SCM_RIGHTS:

    {"ociVersion": ..., "fds": ["seccompFd"], "pid": <host pid>,
     "metadata": <listenerMetadata>, "state": <the container's state>}

The workload is inside the container and cannot reach the host path, so the
fd travels workload -> sandbox (or exec's joiner) -> this CLI, which is in
the runtime's mount namespace."""

import os

from .. import jsonio
from ..errors import Failure, os_error_text
from ..linux import unix


def send_listener(seccomp: dict, fd: int, pid: int, state: dict):
    path = seccomp.get("listenerPath")
    message = {"ociVersion": state.get("ociVersion"), "fds": ["seccompFd"], "pid": pid,
               "metadata": seccomp.get("listenerMetadata", ""), "state": state}
    try:
        with unix.connect_stream(path, 10) as sock:
            unix.send_bytes(sock, jsonio.dumps(message).encode(), [fd])
    except OSError as e:
        raise Failure(f"linux.seccomp.listenerPath {path}: {os_error_text(e)}") from None
    finally:
        os.close(fd)
