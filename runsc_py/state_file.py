"""Per-container state in the runtime root: the one place for state I/O.

Files, flat in the root, all named `<cid>_sandbox:<sid>.<kind>`:

    .lock    flock(2) target; its presence means the container exists or is being made
    .state   the record (JSON, below); written atomically, read without a lock
    .spec    config.json as it was at create (later edits of the bundle do not
             affect the container); written before the first record
    .exit    the workload's exit status, written by the gofer when the sandbox
             reports it, without the lock (a destroyer may hold the lock while
             waiting for the sandbox to die)
    .cgroup  the journal of the cgroups create made (runsc_py/cgroups), so a
             destroyer finds them even if create died before the first record
    .sock    the sandbox's control socket (`sock-<hash>` when the name would
             not fit a unix socket address)

Record schema (version 2):

    {"version": 2, "id": str, "sandboxId": str, "bundle": abs path,
     "createdAt": RFC3339 with ns, "owner": uid, "status": str,
     "annotations": {str: str},
     "sandbox": {"pid": int, "startTime": int, "controlSocket": path,
                 "originalOomScoreAdj": int | null},
     "gofer": {"pid": int, "startTime": int},
     "consoleSocket": path | null, "cgroup": {...} | null,
     "exitStatus": int | null}

Version 1 was this record's first draft, which embedded the spec as "spec"
and kept the sandbox pid at top level as "pid"/"startTime"; it is migrated
under the lock (the check is repeated once the lock is held, so two
migrators migrate once).

Rules (see DESIGN.md "State"): writers hold the lock; every write is temp
file + fsync + rename + fsync(dir), so readers see the old or the new record,
never half. The lock is a plain `fcntl.flock`: the kernel drops it when its
holder dies. (filelock's UnixFileLock is the same flock, but importing the
filelock package costs ~27 ms per CLI call here, more than runc's whole
`state`; the features used are these few lines. Tools that lock the
`.lock` file with filelock's UnixFileLock and runsc-py exclude each other
both ways: tests/unit/test_state_file.py proves it.)

Names of ours that are not regular files (a symlink, directory or FIFO
left by a damaged root) are reported as corrupt, never followed and never
waited on; `delete --force` removes them.
"""

import errno
import fcntl
import os
import stat  # already imported by os: free

from . import jsonio
from . import status as st
from .errors import AlreadyExists, Corrupt, Failure, NotExist

VERSION = 2
SOCKET_NAME_MAX = 64  # leaves room for "/proc/self/fd/NNNN/" in sun_path's 108 bytes
MAX_RECORD = 4 << 20  # > specs.config.MAX_ANNOTATIONS + the rest of a record (see the limits there)
MAX_SPEC = 8 << 20  # specs.config.MAX_CONFIG
LOCK_TIMEOUT = 60.0


def validate_id(cid: str):
    """IDs name files in the root: `^[\\w+.-]+$`, at most 1024 bytes, and not
    `.` or `..`. Checked before any path is built."""
    if not cid:
        raise Failure("container id must not be empty")
    if len(cid.encode()) > 1024:
        raise Failure("container id is longer than 1024 bytes")
    if cid in (".", "..") or not all(c.isascii() and (c.isalnum() or c in "_+.-") for c in cid):
        raise Failure(f'invalid container id "{cid}": only letters, digits and _ + . - are allowed')


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode=0o600):
    """Write `data` to `path` so that a reader or a crash sees old or new, never half."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(directory)


def _unlink(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _remove(path):
    """Remove a file of the container, or an empty directory found in its
    place (a damaged root); True if something was removed."""
    try:
        return _unlink(path)
    except IsADirectoryError:
        os.rmdir(path)
        return True


class _Unreadable(Exception):
    """A name of ours that is a symlink, directory, FIFO or device, or a
    file too large to be ours."""


def _read_regular(path, limit):
    """The content of the regular file at `path` (at most `limit` bytes),
    never following a symlink and never blocking: O_NONBLOCK, so a FIFO in
    the root cannot hang `list` or `state` (a plain open of a FIFO waits
    for a writer). One fstat and, for our small files, one read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _Unreadable(f"{path} is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable(f"{path} is not a regular file")
        if info.st_size > limit:
            raise _Unreadable(f"{path} is larger than {limit >> 20} MiB")
        chunks = []
        want = info.st_size + 1  # one more: a short read is the end of the file
        while want > 0:
            chunk = os.read(fd, want)
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise _Unreadable(f"{path} is larger than {limit >> 20} MiB")
    return data


def write_error(root: str, err: OSError) -> Failure:
    """The one line for a failed write in the root (seed 001: read-only stores
    fail cleanly, they do not crash)."""
    if err.errno == errno.EROFS:
        return Failure(f"root directory {root} is read-only")
    if err.errno == errno.ENOSPC:
        return Failure(f"no space left on device in root directory {root}")
    return Failure(f"{err.filename or root}: {(err.strerror or str(err)).lower()}")


def ensure_root(root: str):
    """Create the root (0711) for a writer; readers never create it."""
    try:
        os.makedirs(root, mode=0o711, exist_ok=True)
    except OSError as e:
        raise write_error(root, e) from None


class StateFile:
    """The files of one container. Construct with `find` (existing) or
    directly (new); all paths are derived from a validated id."""

    def __init__(self, root: str, cid: str, sid: str | None = None):
        validate_id(cid)
        if sid is not None:
            validate_id(sid)
        self.root = root
        self.cid = cid
        self.sid = sid or cid
        self.base = os.path.join(root, f"{self.cid}_sandbox:{self.sid}")
        self._lock_fd = None

    # -- paths ------------------------------------------------------------
    def path(self, kind):
        if kind == "sock":
            return self._socket_path()
        return f"{self.base}.{kind}"

    def _socket_path(self):
        """A unix socket's name must fit sun_path (108 bytes, reached through
        /proc/self/fd/N/ for a long root): engines' 64-character ids make
        `<cid>_sandbox:<sid>.sock` too long, so such a name is hashed. The
        record keeps the path, so only create and destroy compute it."""
        name = os.path.basename(self.base) + ".sock"
        if len(name) > SOCKET_NAME_MAX:
            import hashlib
            name = "sock-" + hashlib.sha256(name.encode()).hexdigest()[:32]
        return os.path.join(self.root, name)

    @classmethod
    def find(cls, root: str, cid: str) -> "StateFile":
        """The StateFile of an existing container, or NotExist.

        A root container has sid == cid: found with one stat, whatever the
        number of containers. Only pod members need a scan of the root."""
        validate_id(cid)
        direct = cls(root, cid)
        if os.path.lexists(direct.path("state")) or os.path.lexists(direct.path("lock")):
            return direct
        prefix = f"{cid}_sandbox:"
        try:
            with os.scandir(root) as entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(prefix) and name.endswith((".state", ".lock")):
                        return cls(root, cid, name[len(prefix):].rpartition(".")[0])
        except FileNotFoundError:
            pass
        raise NotExist(cid)

    @staticmethod
    def id_taken(root: str, cid: str) -> bool:
        """Whether a record of `cid` exists in any sandbox of the root: an id
        names one container in the root (lock_for_new sees only its own
        sandbox's files)."""
        prefix = f"{cid}_sandbox:"
        try:
            with os.scandir(root) as entries:
                return any(e.name.startswith(prefix) and e.name.endswith(".state") for e in entries)
        except FileNotFoundError:
            return False

    # -- locking ----------------------------------------------------------
    @property
    def locked(self):
        return self._lock_fd is not None

    def _flock(self, fd, blocking, timeout):
        if not blocking:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        # Contended: block in the kernel (no polling), bounded by an interval
        # timer whose handler raises out of the interrupted flock.
        def expired(_sig, _frame):
            raise TimeoutError
        import signal  # only when contended: it costs ~3 ms (enum) on every call otherwise
        old = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except TimeoutError:
            raise Failure(f'timed out after {timeout:g}s waiting for the lock of container "{self.cid}"') from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    def _acquire(self, create, blocking=True, timeout=LOCK_TIMEOUT):
        path = self.path("lock")
        while True:
            flags = os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
            try:
                fd = os.open(path, flags, 0o600)
            except FileNotFoundError:
                raise NotExist(self.cid) from None
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise Corrupt(self.cid, f"{path} is a symbolic link") from None
                if e.errno == errno.EISDIR:
                    raise Corrupt(self.cid, f"{path} is not a regular file") from None
                raise write_error(self.root, e) from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device where the lock file belongs
                os.close(fd)
                raise Corrupt(self.cid, f"{path} is not a regular file")
            try:
                self._flock(fd, blocking, timeout)
            except BaseException:
                os.close(fd)
                raise
            # A destroyer may have unlinked the lock file while we waited:
            # holding a lock on an unlinked inode protects nothing.
            try:
                linked = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                linked = False
            if linked:
                self._lock_fd = fd
                return
            os.close(fd)
            if not create:
                raise NotExist(self.cid)

    def lock(self, timeout=LOCK_TIMEOUT):
        """Lock an existing container; NotExist if it is gone (or goes while we wait)."""
        self._acquire(create=False, timeout=timeout)
        if not os.path.lexists(self.path("state")):
            self.unlock()
            raise NotExist(self.cid)

    def lock_for_destroy(self, timeout=LOCK_TIMEOUT):
        """Lock even a container whose record was never written (a create
        that was killed before its first save leaves only the lock file),
        and one whose lock file is damaged: missing beside a record, or a
        symlink, directory or FIFO in its place is replaced, so that
        `delete --force` can always clear the container."""
        lock, state = self.path("lock"), self.path("state")
        while True:
            if not os.path.lexists(lock) and os.path.lexists(state):
                # Destroyers remove `.state` before `.lock`, so a record
                # without its lock file was damaged by something else.
                if self._try_create_lock():
                    return
                continue
            try:
                self._acquire(create=False, timeout=timeout)
                return
            except Corrupt:
                try:
                    _remove(lock)
                except OSError as e:
                    raise write_error(self.root, e) from None

    def _try_create_lock(self):
        """Make and lock a fresh lock file; False if another process made one first."""
        path = self.path("lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return False
        except OSError as e:
            raise write_error(self.root, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def try_lock(self) -> bool:
        try:
            self._acquire(create=False, blocking=False)
        except BlockingIOError:
            return False
        return True

    def lock_for_new(self):
        """Lock a new container id: AlreadyExists if a record exists (or a
        create of the same id is in progress and holds the lock)."""
        ensure_root(self.root)
        try:
            self._acquire(create=True, blocking=False)
        except BlockingIOError:
            raise AlreadyExists(self.cid) from None
        if os.path.lexists(self.path("state")):
            self.unlock()
            raise AlreadyExists(self.cid)

    def unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only fd drops the flock
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.unlock()

    # -- reading (never locks) ---------------------------------------------
    def read_raw(self) -> dict:
        try:
            data = _read_regular(self.path("state"), MAX_RECORD)
        except FileNotFoundError:
            raise NotExist(self.cid) from None
        except _Unreadable as e:
            raise Corrupt(self.cid, str(e)) from None
        try:
            record = jsonio.loads(data)
        except ValueError as e:
            raise Corrupt(self.cid, f"invalid JSON: {e}") from None
        if not isinstance(record, dict):
            raise Corrupt(self.cid, "record is not a JSON object")
        return record

    def load(self) -> dict:
        """The record, migrated to the current version (in memory if the
        root cannot be written, on disk under the lock otherwise)."""
        record = self.read_raw()
        version = record.get("version")
        if version == VERSION:
            return _checked(self.cid, record)
        if not isinstance(version, int) or version < 1:
            raise Corrupt(self.cid, f"unknown record version {version!r}")
        if version > VERSION:
            raise Failure(f'state of container "{self.cid}" has version {version}, newer than the '
                          f'version {VERSION} this runsc-py understands; use a newer runsc-py')
        return self._migrate()

    def _migrate(self) -> dict:
        held = self.locked
        try:
            if not held:
                self.lock()
        except Failure:
            # Read-only root or a busy lock: answer from a migrated copy.
            return _checked(self.cid, migrate(self, self.read_raw()))
        try:
            record = self.read_raw()  # re-read under the lock: another migrator may have won
            if record.get("version") != VERSION:
                record = migrate(self, record)
                self.save_locked(record)
            return _checked(self.cid, record)
        finally:
            if not held:
                self.unlock()

    def read_spec(self) -> dict:
        """The spec snapshot; OSError if it is missing or not a regular
        file, ValueError if it is not JSON."""
        path = self.path("spec")
        try:
            return jsonio.loads(_read_regular(path, MAX_SPEC))
        except _Unreadable as e:
            raise OSError(errno.EINVAL, str(e)) from None

    def read_exit(self):
        """The exit status the gofer recorded, or None."""
        try:
            return jsonio.loads(_read_regular(self.path("exit"), 4096))["exitStatus"]
        except (OSError, _Unreadable, ValueError, KeyError, TypeError):
            return None

    # -- writing (lock held) -------------------------------------------------
    def save_locked(self, record: dict):
        if not self.locked:
            raise AssertionError("save_locked without the lock")
        record["version"] = VERSION
        data = jsonio.dumps(record).encode()
        if len(data) > MAX_RECORD:  # config validation keeps records far below: never write one unreadable
            raise Failure(f'state of container "{self.cid}": a record of {len(data)} bytes would be '
                          f"larger than {MAX_RECORD >> 20} MiB")
        self._write("state", data)

    def save_spec_locked(self, spec_json: bytes):
        if not self.locked:
            raise AssertionError("save_spec_locked without the lock")
        if len(spec_json) > MAX_SPEC:  # likewise for the spec snapshot
            raise Failure(f"config.json: its snapshot of {len(spec_json)} bytes would be larger than "
                          f"{MAX_SPEC >> 20} MiB")
        self._write("spec", spec_json)

    def _write(self, kind, data):
        try:
            atomic_write(self.path(kind), data)
        except OSError as e:
            raise write_error(self.root, e) from None

    def destroy(self) -> bool:
        """Remove the container's files: `.state` first, `.lock` last, so a
        concurrent reader sees the container exist or not, never half.

        Returns True if this call removed the record: that caller, and only
        that one, runs the poststop hooks."""
        try:
            removed = _remove(self.path("state"))
            for kind in ("spec", "exit", "sock"):
                _remove(self.path(kind))
            self._remove_strays()
            _remove(self.path("lock"))
        except OSError as e:
            raise write_error(self.root, e) from None
        finally:
            self.unlock()
        return removed

    def _remove_strays(self):
        """Temp files a writer killed mid-write left behind."""
        prefix = "." + os.path.basename(self.base) + "."
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                        _unlink(entry.path)
        except FileNotFoundError:
            pass


_REQUIRED = {"id": str, "sandboxId": str, "bundle": str, "status": str}


def _checked(cid, record):
    for key, typ in _REQUIRED.items():
        if not isinstance(record.get(key), typ):
            raise Corrupt(cid, f"field {key!r} is missing or not a {typ.__name__}")
    if record["status"] not in st.TRANSITIONS:
        raise Corrupt(cid, f"unknown status {record['status']!r}")
    if record["id"] != cid:
        raise Corrupt(cid, f"record names container {record['id']!r}")
    return record


def migrate(sf: StateFile, record: dict) -> dict:
    """Bring a version-1 record to version 2: the spec moves to its own
    file (so `list` parses small records) and the sandbox identity moves
    under "sandbox"."""
    record = dict(record)
    spec = record.pop("spec", None)
    if spec is not None and sf.locked:
        sf.save_spec_locked(jsonio.dumps(spec).encode())
    pid = record.pop("pid", None)
    start = record.pop("startTime", None)
    record.setdefault("sandbox", {"pid": pid, "startTime": start, "controlSocket": sf.path("sock"),
                                  "originalOomScoreAdj": None})
    record.setdefault("gofer", None)
    record.setdefault("annotations", {})
    record.setdefault("exitStatus", None)
    record["version"] = VERSION
    return record


def list_records(root: str, sandbox_id=None):
    """Every container in the root (or only those of sandbox `sandbox_id`,
    chosen by file name before anything is parsed), without locking:
    [(cid, StateFile | None, record | Failure)].

    Files that vanish mid-scan are skipped; a corrupt record is returned as
    its error for that container only."""
    suffix = ".state" if sandbox_id is None else f"_sandbox:{sandbox_id}.state"
    out = []
    try:
        entries = os.listdir(root)
    except FileNotFoundError:
        return out
    for name in entries:
        if not name.endswith(suffix) or name.startswith("."):
            continue
        cid, sep, rest = name[:-len(".state")].partition("_sandbox:")
        if not sep:
            continue
        try:
            sf = StateFile(root, cid, rest)
            out.append((cid, sf, sf.load()))
        except NotExist:
            continue
        except Failure as e:
            out.append((cid, None, e))
    return out
