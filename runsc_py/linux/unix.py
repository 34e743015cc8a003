"""JSON messages with file descriptors over unix sockets.

Every channel between runtime processes (CLI <-> sandbox set-up, gofer ->
sandbox, control socket) is a SOCK_SEQPACKET socket, so one send is one
message: no framing, and a peer that dies shows up as EOF (an empty read).

Built on _socket, the C module under the socket package: importing socket
costs ~5 ms (it builds enums of every address family and socket type), a
fifth of `start` or `kill`; the few conveniences of socket.socket used here
are in `Socket`.
"""

import os
import struct

import _socket
from _socket import (AF_UNIX, CMSG_SPACE, SCM_CREDENTIALS, SCM_RIGHTS, SO_PASSCRED, SOCK_SEQPACKET,
                     SOCK_STREAM, SOL_SOCKET)

from .. import jsonio

MAX_MSG = 1 << 20
MAX_FDS = 250  # the kernel's SCM_MAX_FD is 253 per message
_FD_SPACE = CMSG_SPACE(MAX_FDS * 4)


class Socket(_socket.socket):
    """A socket (close-on-exec, like every socket Python makes) that is a
    context manager and accepts connections as Sockets."""

    __slots__ = ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def accept(self):
        fd, address = self._accept()
        return Socket(fileno=fd), address


def pair():
    """A connected SEQPACKET pair, close-on-exec."""
    a, b = _socket.socketpair(AF_UNIX, SOCK_SEQPACKET)
    return Socket(fileno=a.detach()), Socket(fileno=b.detach())


def send(sock, msg: dict, fds=()):
    send_bytes(sock, jsonio.dumps(msg).encode(), fds)


def send_bytes(sock, data: bytes, fds=()):
    """One message; `fds` go with it as SCM_RIGHTS."""
    if fds:
        sock.sendmsg([data], [(SOL_SOCKET, SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
    else:
        sock.sendall(data)


def _fds_of(cmsgs):
    fds = []
    for level, kind, payload in cmsgs:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            count = len(payload) // 4  # struct, not array: array imports collections (~1.5 ms)
            fds.extend(struct.unpack(f"{count}i", payload[:count * 4]))
    return fds


def recv(sock):
    """(message, fds); (None, []) on EOF."""
    data, cmsgs, _flags, _addr = sock.recvmsg(MAX_MSG, _FD_SPACE)
    fds = _fds_of(cmsgs)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return jsonio.loads(data), fds


def recv_bytes(sock, limit=MAX_MSG):
    """(data, fds) of one message or stream read."""
    data, cmsgs, _flags, _addr = sock.recvmsg(limit, _FD_SPACE)
    return data, _fds_of(cmsgs)


def pass_credentials(sock):
    """Have the kernel attach each sender's pid to messages received on
    `sock` (SO_PASSCRED), translated into the receiver's pid namespace: a
    process inside a container's pid namespace cannot name its host pid
    itself, the kernel can."""
    sock.setsockopt(SOL_SOCKET, SO_PASSCRED, 1)


_UCRED = struct.Struct("iII")


def recv_with_pid(sock):
    """(message, fds, sender pid or None); (None, [], None) on EOF.
    Needs pass_credentials(sock) before the peer sends."""
    data, cmsgs, _flags, _addr = sock.recvmsg(MAX_MSG, CMSG_SPACE(_UCRED.size) + _FD_SPACE)
    fds, pid = _fds_of(cmsgs), None
    for level, kind, payload in cmsgs:
        if level == SOL_SOCKET and kind == SCM_CREDENTIALS:
            pid = _UCRED.unpack(payload[:_UCRED.size])[0]
    if not data:
        for fd in fds:
            os.close(fd)
        return None, [], None
    return jsonio.loads(data), fds, pid


def short_path(path: str):
    """A name for `path` that fits sun_path (108 bytes): through an O_PATH fd
    of its directory when the path is too long. Returns (name, fd or None);
    the caller closes the fd once bound or connected."""
    if len(os.fsencode(path)) < 100:
        return path, None
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd


def _named(kind, path, use, action, timeout=None):
    """A socket of `kind` on which `use(sock, name)` binds or connects to
    `path` (shortened to fit sun_path); closed again if that fails. The
    OSError of a failure names `path` (not the shortened name) and carries
    `action` ("listen on", "connect to") as its socket_action, for the
    one line the user gets (errors.os_error_text)."""
    sock = Socket(AF_UNIX, kind)
    if timeout is not None:
        sock.settimeout(timeout)
    fd = None
    try:
        name, fd = short_path(path)
        use(sock, name)
    except OSError as e:
        sock.close()
        e.filename = path
        e.socket_action = action
        raise
    except BaseException:
        sock.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return sock


def _bind_and_listen(sock, name):
    sock.bind(name)
    sock.listen(16)


def connect(path: str, timeout: float):
    return _named(SOCK_SEQPACKET, path, Socket.connect, "connect to", timeout)


def listen(path: str):
    return _named(SOCK_SEQPACKET, path, _bind_and_listen, "listen on")


def connect_stream(path: str, timeout: float):
    """A SOCK_STREAM connection (the console socket protocol of runc uses one)."""
    return _named(SOCK_STREAM, path, Socket.connect, "connect to", timeout)
