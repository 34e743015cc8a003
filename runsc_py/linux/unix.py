"""JSON messages with file descriptors over unix sockets.

Every channel between runtime processes (CLI <-> sandbox set-up, gofer ->
sandbox, control socket) is a SOCK_SEQPACKET socket, so one send is one
message: no framing, and a peer that dies shows up as EOF (an empty read)."""

import array
import json
import os
import socket
import struct

MAX_MSG = 1 << 20
MAX_FDS = 250  # the kernel's SCM_MAX_FD is 253 per message


def pair():
    """A connected SEQPACKET pair, close-on-exec."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock, msg: dict, fds=()):
    data = json.dumps(msg, separators=(",", ":")).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def recv(sock):
    """(message, fds); (None, []) on EOF."""
    data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MSG, MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    return json.loads(data), fds


def pass_credentials(sock):
    """Have the kernel attach each sender's pid to messages received on
    `sock` (SO_PASSCRED), translated into the receiver's pid namespace: a
    process inside a container's pid namespace cannot name its host pid
    itself, the kernel can."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)


_UCRED = struct.Struct("iII")


def recv_with_pid(sock):
    """(message, fds, sender pid or None); (None, [], None) on EOF.
    Needs pass_credentials(sock) before the peer sends."""
    ancillary = socket.CMSG_SPACE(_UCRED.size) + socket.CMSG_SPACE(MAX_FDS * 4)
    data, cmsgs, _flags, _addr = sock.recvmsg(MAX_MSG, ancillary)
    fds, pid = [], None
    for level, kind, payload in cmsgs:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.extend(array.array("i", payload[:len(payload) - len(payload) % 4]))
        elif level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = _UCRED.unpack(payload[:_UCRED.size])[0]
    if not data:
        for fd in fds:
            os.close(fd)
        return None, [], None
    return json.loads(data), fds, pid


def short_path(path: str):
    """A name for `path` that fits sun_path (108 bytes): through an O_PATH fd
    of its directory when the path is too long. Returns (name, fd or None);
    the caller closes the fd once bound or connected."""
    if len(os.fsencode(path)) < 100:
        return path, None
    directory, name = os.path.split(path)
    fd = os.open(directory or ".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return f"/proc/self/fd/{fd}/{name}", fd


def connect(path: str, timeout: float):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(timeout)
    name, fd = short_path(path)
    try:
        sock.connect(name)
    except BaseException:
        sock.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return sock


def listen(path: str):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    name, fd = short_path(path)
    try:
        sock.bind(name)
        sock.listen(16)
    except BaseException:
        sock.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return sock


def connect_stream(path: str, timeout: float):
    """A SOCK_STREAM connection (the console socket protocol of runc uses one)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    name, fd = short_path(path)
    try:
        sock.connect(name)
    except BaseException:
        sock.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return sock
