"""A container's control groups, on cgroup v1, hybrid and v2 hosts.

A host mounts cgroup v1 hierarchies (each with one or more controllers, or
a name like name=systemd), the cgroup2 "unified" hierarchy, or both (hybrid:
v1 for most controllers, cgroup2 for what no v1 hierarchy binds; on this
project's CI host that is hugetlb alone). The kernel binds each controller
to one hierarchy at a time, so one interface covers all three: a
container's cgroup is one directory per mounted hierarchy, its processes
are in every one of them, and each resource is written in the hierarchy
that holds its controller, in that version's terms (resources.py).

Paths follow runc (linux.cgroupsPath, config-linux.md "Cgroups path"): an
absolute path is relative to each hierarchy's mount root, a relative one to
this process's own cgroup in that hierarchy (on a pure v2 host to its
parent: the "no internal processes" rule keeps a cgroup with processes of
its own from giving controllers to children); unset, it is
/runsc-py/<container id>.

The identity of a container's cgroup, the state record's "cgroup" field:

    {"dirs": {"memory": {"path": "/sys/fs/cgroup/memory/runsc-py/ID", "created": 2},
              ..., "unified": {...}}}

`created` counts how many of the path's last components this container's
create made. Delete removes exactly those (the leaf after emptying it, then
the parents if nobody else uses them), never a cgroup that existed before.
Until create saves the record, the same document is in the container's
`.cgroup` journal file, written before the first mkdir, so that `delete
--force` after a create killed half-way still finds what to remove.
"""

import errno
import os
import time

from .. import jsonio
from ..errors import Failure, os_error_text
from ..linux import signals
from . import files, v1, v2

ROOT = "/sys/fs/cgroup"
UNIFIED = "unified"           # the key of the cgroup2 hierarchy in a container's dirs
DEFAULT_PARENT = "/runsc-py"
REMOVE_TIMEOUT = 10.0  # s; like destroy's wait for the sandbox after SIGKILL
_DEVICE_FIELDS = ("linux.resources.devices", "linux.devices")
V1_CONTROLLERS = frozenset({"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
                            "net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc", "debug"})


# -- the host ----------------------------------------------------------------------------------------

class Hierarchy:
    """A mounted hierarchy and where this process sits in it."""

    __slots__ = ("key", "version", "mountpoint", "mount_root", "controllers", "own")

    def __init__(self, key, version, mountpoint, mount_root, controllers, own):
        self.key = key                    # "memory", "cpu,cpuacct", "name=systemd", "unified"
        self.version = version
        self.mountpoint = mountpoint
        self.mount_root = mount_root      # the hierarchy path the mount shows (mountinfo field 4)
        self.controllers = controllers    # v2: the root's cgroup.controllers
        self.own = own                    # this process's cgroup (/proc/self/cgroup)

    def directory(self, inner, pure_v2):
        """The directory of the container's cgroup `inner` in this hierarchy."""
        if inner.startswith("/"):
            return self.mountpoint + inner
        own = self.own or "/"
        if pure_v2 and own != "/":
            own = os.path.dirname(own)
        if self.mount_root == "/":
            below = own.rstrip("/")
        elif own == self.mount_root or own.startswith(self.mount_root + "/"):
            below = own[len(self.mount_root):]
        else:
            raise Failure(f"linux.cgroupsPath: this process's cgroup {own} is outside the {self.key} "
                          f"hierarchy mounted at {self.mountpoint}")
        return f"{self.mountpoint}{below}/{inner}"


class Host:
    """The cgroup hierarchies of this host, read once per command from
    /proc/self/mountinfo and /proc/self/cgroup."""

    def __init__(self, hierarchies, mounts):
        self.hierarchies = hierarchies
        self.mounts = mounts              # [(mountpoint, fstype, super options)] of every cgroup mount
        self.v2 = next((h for h in hierarchies if h.version == 2), None)
        has_v1 = any(h.version == 1 and not all(c.startswith("name=") for c in h.controllers)
                     for h in hierarchies)
        self.mode = ("hybrid" if has_v1 else "v2") if self.v2 else ("v1" if has_v1 else "none")

    @classmethod
    def read(cls):
        own = _own_cgroups()
        mounts, hierarchies, seen = [], [], {}
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fstype, _source, options = right.split()[:3]
                if fstype not in ("cgroup", "cgroup2"):
                    continue
                fields = left.split()
                mountpoint, mount_root = _unescape(fields[4]), _unescape(fields[3])
                options = options.split(",")
                mounts.append((mountpoint, fstype, options))
                if fstype == "cgroup2":
                    ident = frozenset()
                    key, controllers = UNIFIED, None
                else:
                    controllers = tuple(o for o in options if o in V1_CONTROLLERS or o.startswith("name="))
                    if not controllers:
                        continue
                    ident, key = frozenset(controllers), ",".join(controllers)
                # A hierarchy mounted twice is used where /sys/fs/cgroup has it.
                if ident in seen and not (mountpoint.startswith(ROOT + "/") and
                                          not seen[ident].mountpoint.startswith(ROOT + "/")):
                    continue
                if controllers is None:
                    controllers = tuple(files.read(mountpoint, "cgroup.controllers").split())
                seen[ident] = Hierarchy(key, 2 if fstype == "cgroup2" else 1, mountpoint, mount_root,
                                        frozenset(controllers), own.get(ident))
        hierarchies = sorted(seen.values(), key=lambda h: h.version)
        return cls(hierarchies, mounts)

    def holder(self, controller):
        """(key, version) of the hierarchy holding `controller`, or None."""
        names = (controller, "io") if controller == "blkio" else (controller,)
        for h in self.hierarchies:
            if any(n in h.controllers for n in names):
                return h.key, h.version
        return None

    def unified(self):
        return (self.v2.key, self.v2.controllers) if self.v2 else None

    def layout(self):
        """The hierarchies under /sys/fs/cgroup as the sandbox mounts them for
        a `cgroup` mount: [[name, fstype, super options]]."""
        out = []
        for mountpoint, fstype, options in self.mounts:
            if mountpoint == ROOT or mountpoint.startswith(ROOT + "/"):
                out.append([mountpoint[len(ROOT) + 1:], fstype, [o for o in options if o not in ("rw", "ro")]])
        return out


_HOST = None


def current_host():
    """This process's view of the host's hierarchies, read on first use:
    mountinfo is parsed once per command."""
    global _HOST
    if _HOST is None:
        _HOST = Host.read()
    return _HOST


def _own_cgroups():
    """{frozenset(controllers): path} from /proc/self/cgroup; cgroup2 is frozenset()."""
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _hid, controllers, path = line.rstrip("\n").split(":", 2)
            out[frozenset(controllers.split(",")) if controllers else frozenset()] = path
    return out


def _unescape(text):
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    if "\\" not in text:
        return text
    return text.encode().decode("unicode_escape").encode("latin-1").decode()


def cgroups_path(path, cid):
    """linux.cgroupsPath cleaned the way runc cleans it: `..` cannot climb
    out of the base a relative path is relative to."""
    if not path:
        return f"{DEFAULT_PARENT}/{cid}"
    if path.startswith("/"):
        clean = "/" + os.path.normpath(path).lstrip("/")
    else:
        clean = os.path.normpath("/" + path).lstrip("/")
    if clean in ("/", "", "."):
        raise Failure(f"linux.cgroupsPath: {path!r} names no cgroup of the container's own")
    return clean


# -- planning and creating --------------------------------------------------------------------------

_SYSTEMD_DRIVER = False


def use_systemd():
    """--systemd-cgroup: the containers this command creates get a systemd
    scope (systemd.py) instead of cgroupfs directories. A container's record
    says which driver made it, so every other command follows the record."""
    global _SYSTEMD_DRIVER
    _SYSTEMD_DRIVER = True


def plan(spec, cid, host=None):
    """Where the container's cgroup goes and what is written to it, checked
    against this host before anything exists."""
    from . import resources
    host = host or current_host()
    if _SYSTEMD_DRIVER:
        from . import systemd
        return systemd.plan(spec, cid, host)
    linux = spec.linux
    inner = cgroups_path(linux.cgroups_path, cid)
    steps, v2_controllers = resources.plan(linux.resources, host, devices=linux.devices)
    dirs = [(h, h.directory(inner, host.mode == "v2")) for h in host.hierarchies]
    return Plan(host, dirs, steps, v2_controllers, exclusive=not linux.cgroups_path)


class Plan:
    def __init__(self, host, dirs, steps, v2_controllers, exclusive):
        self.host = host
        self.dirs = dirs                      # [(Hierarchy, directory)]
        self.steps = steps
        self.v2_controllers = v2_controllers  # enabled in the v2 ancestors
        self.exclusive = exclusive            # the default path: the leaf must be new
        self.skipped = []                     # rootless: hierarchies done without

    def create(self, journal):
        """Make the directories and write the resources; the Cgroup, or
        None on a host without cgroups. Undoes itself if anything fails."""
        if not self.dirs:
            return None
        cg = Cgroup({h.key: Dir(h.key, h.version, path, _missing(path, h.mountpoint)) for h, path in self.dirs},
                    journal)
        cg.save_journal()
        try:
            self._make_all(cg)
            cg.check_unused()
            if UNIFIED in cg.dirs:
                self._enable_v2(cg.dirs[UNIFIED])
            cg.apply(self.steps)
        except BaseException:
            cg.remove()
            raise
        if self.skipped:
            from ..errors import log
            log.warning(f"rootless: the container has no cgroup in the hierarchies not delegated to this "
                        f"user: {', '.join(self.skipped)}")
        if not cg.dirs:
            cg.remove()  # rootless without any delegated hierarchy: the journal goes
            return None
        return cg

    def _make_all(self, cg):
        for h, _path in self.dirs:
            d = cg.dirs[h.key]
            for _attempt in range(5):
                try:
                    made = _make(d, h)
                    break
                except FileNotFoundError:
                    # A parent went between the check and the mkdir: a delete
                    # removed an empty parent that it had created. Again,
                    # announcing the new count first.
                    d.created = _missing(d.path, h.mountpoint)
                    cg.save_journal()
                except OSError as e:
                    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and self._rootless(cg, h.key):
                        break  # an unprivileged caller without limits: no cgroup here (runc's rootless rule)
                    raise Failure(f"cgroup: creating {e.filename}: {os_error_text(e)}") from None
            else:
                raise Failure(f"cgroup {d.path}: its parent directories keep disappearing")
            if h.key not in cg.dirs:
                cg.save_journal()
                continue
            if made != d.created:
                d.created = made  # someone else made some of them in the meantime
                cg.save_journal()
            if self.exclusive and d.created == 0:
                raise Failure(f"cgroup {d.path} exists already (a container of this id in another runtime "
                              "root?): set linux.cgroupsPath to use it")

    def _rootless(self, cg, key):
        """Rootless, a hierarchy not delegated to the caller is done without
        when no resource needs it (v1 device rules are the kernel's to refuse
        the unprivileged anyway, runc's rule; a v2 device filter is never
        dropped): its directory is dropped from the container's cgroup. A
        resource that needs it is refused by field."""
        from .. import rootless
        if not rootless.active():
            return False
        fields = sorted({s.field for s in self.steps
                         if s.key == key and not (s.field.startswith(_DEVICE_FIELDS) and key != UNIFIED)})
        if fields:
            raise Failure(f"{', '.join(fields)}: not supported rootless: the {key} cgroup "
                          f"{cg.dirs[key].path} is not delegated to this user")
        self.skipped.append(key)
        self.steps = [s for s in self.steps if s.key != key]
        del cg.dirs[key]
        return True

    def _enable_v2(self, d):
        optional = self.host.v2.controllers if self.host.mode == "v2" else ()
        try:
            v2.enable(self.host.v2.mountpoint, d.path, self.v2_controllers, optional)
        except OSError as e:
            raise Failure(f"cgroup: enabling the {', '.join(sorted(self.v2_controllers))} controller(s) "
                          f"for {d.path}: {os_error_text(e)}") from None


def _missing(path, mountpoint):
    """How many of the last components of `path` do not exist yet."""
    count = 0
    while path != mountpoint and not os.path.isdir(path):
        count += 1
        path = os.path.dirname(path)
    return count


def _make(d, hierarchy):
    """mkdir the missing components top-down; how many this call made."""
    chain = [d.path]
    for _ in range(d.created - 1):
        chain.append(os.path.dirname(chain[-1]))
    made = 0
    for path in reversed(chain[:d.created]):
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            made = 0  # not ours; only what lies below it may be
            continue
        made += 1
        if "cpuset" in hierarchy.controllers and hierarchy.version == 1:
            try:
                v1.copy_cpuset(path, os.path.dirname(path))
            except OSError as e:
                raise Failure(f"cgroup: {path}: {os_error_text(e)}") from None
    return made


# -- a container's cgroup ---------------------------------------------------------------------------

class Dir:
    __slots__ = ("key", "version", "path", "created")

    def __init__(self, key, version, path, created):
        self.key, self.version, self.path, self.created = key, version, path, created


class Cgroup:
    """A container's cgroup: one Dir per hierarchy."""

    def __init__(self, dirs, journal=None):
        self.dirs = dirs
        self.journal = journal
        self._v2_controllers = None

    # -- identity ------------------------------------------------------------------------------
    def record(self):
        return {"dirs": {k: {"path": d.path, "created": d.created} for k, d in self.dirs.items()}}

    @classmethod
    def from_record(cls, record, journal=None):
        dirs = {}
        for key, entry in (record or {}).get("dirs", {}).items():
            dirs[key] = Dir(key, 2 if key == UNIFIED else 1, entry["path"], int(entry.get("created", 0)))
        return cls(dirs, journal) if dirs else None

    def save_journal(self):
        """Written before each mkdir that it announces. Without fsync: the
        cgroups it names do not outlive a reboot, and the page cache
        outlives the death of the CLI."""
        if self.journal is None:
            return
        directory, name = os.path.split(self.journal)
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, jsonio.dumps(self.record()).encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.journal)

    # -- placing controllers (resources.plan's `where` for update) ---------------------------------
    def holder(self, controller):
        names = (controller, "io") if controller == "blkio" else (controller,)
        for d in self.dirs.values():
            if d.version == 1 and controller in d.key.split(","):
                return d.key, 1
        if UNIFIED in self.dirs and any(n in self.v2_controllers() for n in names):
            return UNIFIED, 2
        return None

    def unified(self):
        return (UNIFIED, self.v2_controllers()) if UNIFIED in self.dirs else None

    def v2_controllers(self):
        """The controllers the v2 directory has (its cgroup.controllers)."""
        if self._v2_controllers is None:
            d = self.dirs.get(UNIFIED)
            text = files.read_optional(d.path, "cgroup.controllers") if d else None
            self._v2_controllers = frozenset((text or "").split())
        return self._v2_controllers

    def where(self, controller):
        """(version, directory) holding `controller`, for statistics."""
        found = self.holder(controller)
        return None if found is None else (found[1], self.dirs[found[0]].path)

    # -- writing ---------------------------------------------------------------------------------
    def apply(self, steps):
        for step in steps:
            try:
                step.fn(self.dirs[step.key].path, *step.args)
            except OSError as e:
                raise Failure(f"{step.field}: {os_error_text(e)}") from None

    def update(self, merged, previous_devices=None, linux_devices=()):
        """Write `merged` (the container's resources after `update`) again.
        Device rules only when the update gives them: `previous_devices`
        are the rules in force until now (on v1 only the difference is
        written; on v2 the new program is attached before the old one
        goes), `linux_devices` the container's linux.devices."""
        from . import resources
        steps, _ = resources.plan(merged, self, devices=linux_devices, skip_devices=previous_devices is None,
                                  update=True, previous=previous_devices)
        self.apply(steps)

    def check_unused(self):
        """A cgroup that existed before create must hold no process (runc
        1.2 refuses too): sharing it would mix another workload into this
        container's limits, freezes and kills."""
        for d in self.dirs.values():
            if d.created == 0:
                found = files.pids(d.path)
                if found:
                    raise Failure(f"linux.cgroupsPath: cgroup {d.path} is not empty: "
                                  f"{len(found)} process(es) are in it")

    def enter(self, pids):
        """Move processes (all their threads) into every hierarchy; one
        that is gone already (ESRCH) has nothing to move. The freezer's
        hierarchy comes last: a process that moves itself into a paused
        container stops there (exec --ignore-paused), after the others."""
        freezer = self._freezer()
        for d in sorted(self.dirs.values(), key=lambda d: freezer is not None and d.path == freezer[1]):
            try:
                fd = os.open(f"{d.path}/cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
                try:
                    for pid in pids:
                        try:
                            os.write(fd, str(pid).encode())
                        except ProcessLookupError:
                            pass
                finally:
                    os.close(fd)
            except OSError as e:
                e.filename = e.filename or f"{d.path}/cgroup.procs"
                hint = ""
                if e.errno == errno.EACCES and d.version == 2:
                    from .. import rootless
                    if rootless.active():  # cgroup v2 moves a process only below a cgroup.procs the mover may write
                        hint = " (rootless: the caller must itself run inside the delegated cgroup)"
                raise Failure(f"joining the container's cgroup: {os_error_text(e)}{hint}") from None

    # -- processes ----------------------------------------------------------------------------------
    def procs(self):
        freezer = self._freezer()
        path = freezer[1] if freezer else next(iter(self.dirs.values())).path
        return files.pids(path)

    def _freezer(self):
        """(version, directory) that freezes the container: the v1 freezer
        controller where the host has one, else cgroup v2's own freezer."""
        for d in self.dirs.values():
            if d.version == 1 and "freezer" in d.key.split(","):
                return 1, d.path
        d = self.dirs.get(UNIFIED)
        if d is not None and files.exists(d.path, "cgroup.freeze"):
            return 2, d.path
        return None

    def can_freeze(self):
        return self._freezer() is not None

    def freeze(self):
        version, path = self._require_freezer()
        try:
            (v1 if version == 1 else v2).freeze(path)
        except OSError as e:
            raise Failure(f"freezing the container: {os_error_text(e)}") from None

    def thaw(self):
        version, path = self._require_freezer()
        try:
            (v1 if version == 1 else v2).thaw(path)
        except OSError as e:
            raise Failure(f"thawing the container: {os_error_text(e)}") from None

    def frozen(self):
        freezer = self._freezer()
        if freezer is None:
            return False
        try:
            return (v1 if freezer[0] == 1 else v2).frozen(freezer[1])
        except FileNotFoundError:
            return False

    def _require_freezer(self):
        freezer = self._freezer()
        if freezer is None:
            raise Failure("this host has no cgroup freezer (neither the v1 freezer controller nor cgroup.freeze)")
        return freezer

    def signal_all(self, sig, spare=()):
        """Send `sig` to every process of the container; the pids in
        `spare` (the runtime's own helpers) only get SIGKILL. Returns how
        many processes there were.

        Like runc: SIGKILL goes through cgroup.kill where there is one
        (atomic, reaches frozen tasks); otherwise the cgroup is frozen while
        its pids are read and signalled, so nothing forks past the signal
        or exits and has its pid reused in between, then restored: a paused
        container stays paused (the signal is delivered when it resumes),
        except after SIGKILL, which a v1-frozen task only acts on once thawed."""
        pids = self.procs()
        if not pids:
            return 0
        d = self.dirs.get(UNIFIED)
        if sig == signals.SIGKILL and d is not None and v2.can_kill(d.path):
            v2.kill(d.path)
            self._thaw_quietly()
            return len(pids)
        was_frozen = self.frozen()
        froze = False
        if not was_frozen and self.can_freeze():
            try:
                self.freeze()
                froze = True
            except Failure:
                pass  # signal them anyway, as runc does
        try:
            pids = self.procs()
            for pid in pids:
                if pid in spare and sig != signals.SIGKILL:
                    continue
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if froze or (was_frozen and sig == signals.SIGKILL):
                self._thaw_quietly()
        return len(pids)

    def kill_frozen(self):
        """SIGKILL everything, then thaw: what a frozen (paused) container
        needs before its processes can be waited for."""
        self.signal_all(signals.SIGKILL)
        self._thaw_quietly()

    def _thaw_quietly(self):
        try:
            if self.frozen():
                self.thaw()
        except Failure:
            pass

    # -- removal ----------------------------------------------------------------------------------
    def remove(self):
        """Empty and remove the directories this container created, then
        the journal. Returns the errors (the caller joins them with others)."""
        errors = []
        deadline = time.monotonic() + REMOVE_TIMEOUT
        for d in self.dirs.values():
            if d.created <= 0:
                continue
            try:
                self._remove_dir(d, deadline)
            except OSError as e:
                errors.append(f"removing cgroup {d.path}: {os_error_text(e)}")
        if not errors and self.journal is not None:
            try:
                os.unlink(self.journal)
            except FileNotFoundError:
                pass
        return errors

    def _remove_dir(self, d, deadline):
        try:
            os.rmdir(d.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            self._evict(d, deadline)
        parent = d.path
        for _ in range(d.created - 1):
            parent = os.path.dirname(parent)
            try:
                os.rmdir(parent)
            except OSError:
                break  # another container's cgroup is still in it (EBUSY), or it is gone

    def _evict(self, d, deadline):
        """Kill what is left in `d` and below it, then remove it all,
        bounded. v2 tells when the cgroup is empty (cgroup.events); v1 does
        not, so there rmdir is retried with backoff."""
        delay = 0.001
        while True:
            subs = []
            for dirpath, dirnames, _ in os.walk(d.path, topdown=False):
                subs.extend(os.path.join(dirpath, n) for n in dirnames)
            if d.version == 2 and v2.can_kill(d.path):
                v2.kill(d.path)
            else:
                for path in subs + [d.path]:
                    for pid in files.pids(path):
                        try:
                            os.kill(pid, signals.SIGKILL)
                        except ProcessLookupError:
                            pass
            self._thaw_quietly()
            for path in subs:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            try:
                os.rmdir(d.path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                left = deadline - time.monotonic()
                if e.errno != errno.EBUSY or left <= 0:
                    raise
            if d.version == 2:
                v2.wait_empty(d.path, left)
            else:
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.1)

    # -- observing ----------------------------------------------------------------------------------
    def oom_watch(self):
        """A watch whose fileno() polls readable (for its .mask) when the
        memory controller reports an OOM, or None without one."""
        found = self.where("memory")
        if found is None:
            return None
        version, path = found
        try:
            return v1.OomWatch(path) if version == 1 else v2.OomWatch(path)
        except OSError:
            return None

    def stats(self):
        from .stats import collect
        return collect(self)


def load(record, journal=None):
    """The Cgroup of a state record's "cgroup" field, or None."""
    return _from_record(record, journal) if record else None


def _from_record(record, journal):
    if "systemd" in record:
        from .systemd import SystemdCgroup
        return SystemdCgroup.from_record(record, journal)
    return Cgroup.from_record(record, journal)


def recover(journal):
    """The Cgroup a create announced in its journal, for a delete that finds
    no record (the create was killed before saving it), or None."""
    try:
        with open(journal, "rb") as f:
            record = jsonio.loads(f.read())
    except (FileNotFoundError, ValueError):
        return None
    try:
        return _from_record(record, journal)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
