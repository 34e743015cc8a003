"""The client of a sandbox's control socket: one connection per request,
JSON both ways, bounded by a timeout."""

import os

from ..errors import Failure, os_error_text
from ..linux import unix


def request(container, msg: dict, timeout=10.0, fds_out=None) -> dict:
    """The sandbox's reply; fds it sent are appended to `fds_out` if given
    (and closed otherwise)."""
    path = container.sandbox.get("controlSocket") or container.sf.path("sock")
    try:
        sock = unix.connect(path, timeout)
    except OSError as e:
        raise Failure(f'container "{container.cid}": sandbox does not answer: {os_error_text(e)}') from None
    with sock:
        try:
            unix.send(sock, msg)
            reply, fds = unix.recv(sock)
        except OSError as e:
            why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e)).lower()
            raise Failure(f'container "{container.cid}": sandbox does not answer on {path}: {why}') from None
    if fds_out is not None:
        fds_out.extend(fds)
    else:
        for fd in fds:
            os.close(fd)
    if reply is None:
        raise Failure(f'container "{container.cid}": sandbox closed the control connection')
    return reply
