"""Reading and writing cgroup files with plain os calls.

The kernel parses every write(2) to a cgroup file as one value, so a value
is written with exactly one write on a fresh fd. Errors are OSErrors whose
filename is the file's full path; callers turn them into one line that
names the spec field they came from.
"""

import errno
import os


def write(dirpath, name, value):
    fd = os.open(f"{dirpath}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        e.filename = f"{dirpath}/{name}"
        raise
    finally:
        os.close(fd)


def read(dirpath, name):
    fd = os.open(f"{dirpath}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read_optional(dirpath, name):
    """The file's text, or None if this cgroup has no such file."""
    try:
        return read(dirpath, name)
    except FileNotFoundError:
        return None


def exists(dirpath, name):
    return os.path.exists(f"{dirpath}/{name}")


def to_uint(text):
    """A cgroup number: "max" (v2) reads as the largest uint64."""
    text = text.strip()
    if text == "max":
        return (1 << 64) - 1
    return int(text)


def read_uint(dirpath, name, default=0):
    text = read_optional(dirpath, name)
    if text is None or not text.strip():
        return default
    return to_uint(text)


def key_values(text):
    """`key value` lines (memory.stat, cpu.stat, cgroup.events) as a dict of ints."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = to_uint(value)
        except ValueError:
            continue
    return out


def pids(dirpath):
    """The pids in cgroup.procs (seen in the reader's pid namespace)."""
    try:
        return [int(p) for p in read(dirpath, "cgroup.procs").split()]
    except FileNotFoundError:
        return []


def first_existing(path, *choices):
    """Write to the first file of `choices` ((name, value), ...) that the
    cgroup has: blkio and io weights live in *.bfq.* files where the BFQ
    scheduler is built, in the plain ones otherwise (v2's io.weight takes a
    converted value, so each choice has its own)."""
    for name, value in choices:
        if exists(path, name):
            write(path, name, value)
            return
    raise FileNotFoundError(errno.ENOENT, "this cgroup has none of the files "
                            + ", ".join(name for name, _ in choices), path)
