"""Pseudo-terminals from the devpts instance mounted at /dev/pts of the
caller's mount namespace (inside a container, the container's own).

Python's termios module lacks the ptmx ioctls, so their numbers are here
(the same on x86_64 and aarch64)."""

import fcntl
import os
import struct
import termios

from . import unix

TIOCGPTN = 0x80045430    # _IOR('T', 0x30, unsigned int): the slave's number
TIOCSPTLCK = 0x40045431  # _IOW('T', 0x31, int): (un)lock the slave


def open_pty(size=None):
    """(master fd, slave fd, slave path); both close-on-exec, the slave
    without becoming our controlling terminal. `size` is (rows, columns)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
        path = f"/dev/pts/{number}"
        slave = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except BaseException:
        os.close(master)
        raise
    if size:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    return master, slave, path


def hand_to_console(console, size=None):
    """Make a pty, send its master over the connected --console-socket
    (runc's protocol: one message, the slave's path as data, the master as
    SCM_RIGHTS) and return the slave fd for the process."""
    master, slave, path = open_pty(size)
    try:
        unix.send_bytes(console, path.encode(), [master])
    except BaseException:
        os.close(slave)
        raise
    finally:
        os.close(master)
        console.close()
    return slave
