"""The systemd cgroup driver (`--systemd-cgroup`): systemd owns the tree,
the container's cgroup is a transient scope unit it makes for us.

linux.cgroupsPath is `slice:prefix:name` (runc's convention, which every
engine uses with this driver): the container's unit is the scope
`prefix-name.scope` in the slice `slice`. The scope is started through
systemd's D-Bus API (StartTransientUnit) with the container's first
processes in it, Delegate=yes (the subtree is ours to write) and the
resources that have a systemd property, so systemd keeps them when it
rewrites its cgroups; every resource is then written to the scope's own
cgroup files too, as the cgroupfs driver writes them, so what systemd
cannot express is applied as well, and what cannot be applied at all is
refused by field (resources.py).

On this driver the state record's "cgroup" field is the cgroupfs one with
a "systemd" entry: {"systemd": {"unit": "runsc-py-c1.scope", "started":
true}, "dirs": {"unified": {"path":
"/sys/fs/cgroup/system.slice/runsc-py-c1.scope", "created": 0}}}.
`created` is 0: the directory is systemd's to remove, when delete stops
the unit. `started` is written to the journal as soon as systemd accepts
the start job: only then is the unit this container's, and only then does
a delete stop it (a unit of that name that another container has is
never touched). Only cgroup v2 hosts are handled.

Nothing here is imported unless a command is given --systemd-cgroup or
meets a container created with it.
"""

import errno
import math
import os
import time

from ..errors import Failure, Unsupported, log, os_error_text
from ..linux import signals
from . import Cgroup, Dir, UNIFIED, files, v2

FIELD = "linux.cgroupsPath"
DEFAULT_SLICE = "system.slice"
DEFAULT_PREFIX = "runsc-py"
JOB_TIMEOUT = 30.0        # s; a start or stop job of a scope takes milliseconds, unless systemd is stuck
CALL_TIMEOUT = 25.0       # s; each connect and method call (libdbus's and sd-bus's default is 25 s)
EMPTY_TIMEOUT = 10.0
MAX_UINT64 = (1 << 64) - 1
BUS_SOCKET = "/run/dbus/system_bus_socket"
PRIVATE_SOCKET = "/run/systemd/private"
ANNOTATION = "org.systemd.property."

_DEST = "org.freedesktop.systemd1"
_OBJECT = "/org/freedesktop/systemd1"
_MANAGER = "org.freedesktop.systemd1.Manager"
_UNIT_CHARS = r"[A-Za-z0-9:_.\\@-]+"


def _re():
    """re, imported where a spec is parsed only: `kill --all` and `delete`
    of a container of this driver load this module too."""
    import re
    return re


# -- linux.cgroupsPath -------------------------------------------------------------------------------

def parse_path(path, cid):
    """(slice unit, scope unit, cgroup path of the scope) for `path`."""
    if not path:
        slice_, prefix, name = DEFAULT_SLICE, DEFAULT_PREFIX, cid
    else:
        parts = path.split(":")
        if len(parts) != 3:
            raise Failure(f"{FIELD}: {path!r} is not of the form \"slice:prefix:name\" "
                          "that the systemd cgroup driver uses")
        slice_, prefix, name = parts
        slice_ = slice_ or DEFAULT_SLICE
    if slice_ == "-":
        slice_ = "-.slice"
    if not name:
        raise Failure(f"{FIELD}: {path!r} names no unit (its name part is empty)")
    if name.endswith(".slice"):
        raise Unsupported(f"{FIELD}: a slice as the container's own unit ({name!r})")
    unit = f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    if not _re().fullmatch(_UNIT_CHARS, unit) or len(unit) > 255:
        raise Failure(f"{FIELD}: {unit!r} is not a valid systemd unit name")
    return slice_, unit, f"{expand_slice(slice_, path)}/{unit}".replace("//", "/")


def expand_slice(slice_, path=None):
    """The cgroup path of a slice: systemd nests a dashed name in the
    slices of its prefixes, `a-b.slice` in `a.slice/a-b.slice`; `-.slice`
    is the root."""
    where = f"{FIELD}: {path!r}: " if path is not None else f"{FIELD}: "
    if not slice_.endswith(".slice") or "/" in slice_:
        raise Failure(f"{where}{slice_!r} is not a slice name (NAME.slice)")
    if slice_ == "-.slice":
        return "/"
    stem = slice_[:-len(".slice")]
    if not stem or stem.startswith("-") or stem.endswith("-") or "--" in stem \
            or not _re().fullmatch(_UNIT_CHARS, slice_):
        raise Failure(f"{where}{slice_!r} is not a valid slice name")
    out, prefix = "", ""
    for part in stem.split("-"):
        prefix = f"{prefix}-{part}" if prefix else part
        out += f"/{prefix}.slice"
    return out


# -- properties ---------------------------------------------------------------------------------------

def resource_properties(resources, devices=()):
    """[(name, (signature, value))] for the resources systemd has a
    property for. The same values are also written to the cgroup
    directly; these keep systemd from undoing them."""
    from . import resources as res
    r = resources or {}
    props = []

    def limit(name, value):
        if value == -1:
            props.append((name, ("t", MAX_UINT64)))
        elif value and value > 0:
            props.append((name, ("t", value)))

    mem = r.get("memory") or {}
    mem_limit, swap = mem.get("limit") or 0, mem.get("swap") or 0
    limit("MemoryMax", mem_limit)
    limit("MemoryLow", mem.get("reservation") or 0)
    if mem_limit or swap:
        try:
            swap_only = res.swap_to_v2(swap, mem_limit)  # what memory.swap.max gets (resources.py)
        except ValueError:
            swap_only = None  # resources.plan refuses it, naming the field
        if swap_only == -1:
            props.append(("MemorySwapMax", ("t", MAX_UINT64)))
        elif swap_only is not None and swap > 0:
            props.append(("MemorySwapMax", ("t", swap_only)))
    cpu = r.get("cpu") or {}
    if cpu.get("shares"):
        props.append(("CPUWeight", ("t", res.shares_to_weight(cpu["shares"]))))
    quota, period = cpu.get("quota") or 0, cpu.get("period") or 0
    if period:
        props.append(("CPUQuotaPeriodUSec", ("t", period)))
    if quota == -1:
        props.append(("CPUQuotaPerSecUSec", ("t", MAX_UINT64)))
    elif quota > 0:
        # systemd keeps the quota as a percentage of a CPU: round up to the
        # next 10 ms per second so that the exact cpu.max written after
        # it is never above what systemd allows.
        per_sec = quota * 1000000 / (period or res.DEFAULT_CFS_PERIOD)
        props.append(("CPUQuotaPerSecUSec", ("t", math.ceil(per_sec / 10000) * 10000)))
    for key, name in (("cpus", "AllowedCPUs"), ("mems", "AllowedMemoryNodes")):
        if cpu.get(key):
            try:
                props.append((name, ("ay", cpu_mask(res.parse_cpu_list(cpu[key])))))
            except ValueError:
                raise Failure(f"linux.resources.cpu.{key}: {cpu[key]!r} is not a list of numbers") from None
    limit("TasksMax", (r.get("pids") or {}).get("limit") or 0)
    weight = (r.get("blockIO") or {}).get("weight") or 0
    if weight:
        props.append(("IOWeight", ("t", res.blkio_to_io_weight(weight))))
    props.extend(_unified_properties(r.get("unified") or {}))
    if devices is not None:
        allow = device_allow(r.get("devices"), devices)
        if allow is not None:
            props.append(("DevicePolicy", ("s", "strict")))
            props.append(("DeviceAllow", ("a(ss)", allow)))
    return props


def _unified_properties(entries):
    """The linux.resources.unified files that a property above also sets:
    systemd must keep the unified value, not its default."""
    props = []
    for name, prop in (("memory.max", "MemoryMax"), ("memory.low", "MemoryLow"),
                       ("memory.swap.max", "MemorySwapMax"), ("pids.max", "TasksMax"),
                       ("cpu.weight", "CPUWeight"), ("io.weight", "IOWeight")):
        text = str(entries.get(name, "")).strip()
        if text == "max":
            props.append((prop, ("t", MAX_UINT64)))
        elif text.isdigit():
            props.append((prop, ("t", int(text))))
    return props


def cpu_mask(cpus):
    """systemd's CPU and NUMA node sets: a little-endian bit mask, bit n for CPU n."""
    mask = bytearray((max(cpus) // 8 + 1) if cpus else 0)
    for n in cpus:
        mask[n // 8] |= 1 << (n % 8)
    return bytes(mask)


def device_allow(entries, devices):
    """DeviceAllow for the container, or None when its rules allow every
    device (DevicePolicy stays auto). systemd's list cannot say "deny":
    it gets every device some rule allows (the union, a superset), and the
    ordered rules themselves are enforced by the runtime's own device
    filter (devicefilter.py) beside systemd's, so a device is usable only
    where both allow it. systemd names a single device /dev/char/MAJ:MIN,
    all minors of a major by its /proc/devices name (char-pts), and every
    major with a glob (char-*)."""
    from . import devicefilter
    rules = devicefilter.sequence(entries, devices)
    if devicefilter.emulate(rules).allows_all():
        return None
    names = _device_names()
    out = []
    for rule in rules:
        if not rule.allow or rule.kind == "a":
            continue  # "a" allowed only in part: the union is every device, too wide to name
        group = "char" if rule.kind == "c" else "block"
        access = devicefilter.access_text(rule.access)
        if rule.major is None:
            out.append((f"{group}-*", access))
        elif rule.minor is None:
            name = names.get((group, rule.major))
            if name:
                out.append((f"{group}-{name}", access))
        else:
            out.append((f"/dev/{group}/{rule.major}:{rule.minor}", access))
    return out


def _device_names():
    """{(char|block, major): name} from /proc/devices."""
    out, group = {}, None
    try:
        with open("/proc/devices") as f:
            for line in f:
                if line.startswith("Character"):
                    group = "char"
                elif line.startswith("Block"):
                    group = "block"
                else:
                    major, _, name = line.strip().partition(" ")
                    if group and major.isdigit():
                        out.setdefault((group, int(major)), name)
    except OSError:
        pass
    return out


def annotation_properties(annotations):
    """`org.systemd.property.NAME` annotations: a unit property each, the
    value in GVariant text form (`uint64 5`, `true`, `'text'`); a NAME
    ending in a lower-case letter and Sec is in seconds and goes to systemd
    as NAMEUSec in microseconds (runc's convention, which engines use)."""
    props = []
    for key, text in sorted((annotations or {}).items()):
        if not key.startswith(ANNOTATION):
            continue
        name = key[len(ANNOTATION):]
        where = f"annotations.{key}"
        if not _re().fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
            raise Failure(f"{where}: {name!r} is not a systemd property name")
        try:
            sig, value = parse_gvariant(text)
        except ValueError as e:
            raise Failure(f"{where}: {e}") from None
        if name.endswith("Sec") and len(name) > 3 and name[-4].islower():
            if sig not in "ynqiuxtd" or value < 0:
                raise Failure(f"{where}: a time in seconds must be a non-negative number, not {text!r}")
            name, sig, value = name[:-3] + "USec", "t", int(value * 1000000)
        props.append((name, (sig, value)))
    return props


_GVARIANT_INTEGERS = {"byte": "y", "int16": "n", "uint16": "q", "int32": "i", "uint32": "u",
                      "int64": "x", "uint64": "t"}


def parse_gvariant(text):
    """(signature, value) of the GVariant text forms a unit property takes:
    booleans, integers (typed `uint64 5` / `@t 5`, or plain: int32),
    doubles, strings in quotes, arrays of strings."""
    t = text.strip()
    if t in ("true", "false"):
        return "b", t == "true"
    words = t.split(None, 1)
    if len(words) == 2 and (words[0] in _GVARIANT_INTEGERS or words[0] == "double" or
                            (words[0].startswith("@") and len(words[0]) == 2)):
        sig = "d" if words[0] == "double" else _GVARIANT_INTEGERS.get(words[0], words[0][1:])
        inner_sig, value = parse_gvariant(words[1])
        if sig in _GVARIANT_INTEGERS.values() and inner_sig == "i":
            return sig, value
        if sig == "d" and inner_sig in "id":
            return "d", float(value)
        if sig == inner_sig:
            return sig, value
        raise ValueError(f"{text!r}: {words[1]!r} is not a {words[0]}")
    re = _re()
    if re.fullmatch(r"[-+]?\d+", t):
        return "i", int(t)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?", t):
        return "d", float(t)
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        return "s", _unquote(t)
    if t.startswith("[") and t.endswith("]"):
        items = [i.strip() for i in _split_list(t[1:-1])]
        if all(len(i) >= 2 and i[0] == i[-1] and i[0] in "'\"" for i in items):
            return "as", [_unquote(i) for i in items]
    raise ValueError(f"{text!r} is not a value this runtime can give systemd "
                     "(a boolean, a number, a quoted string or a list of them)")


def _unquote(t):
    body = t[1:-1]
    if "\\" in body or t[0] in body:
        raise ValueError(f"{t!r}: escapes and nested quotes are not handled")
    return body


def _split_list(body):
    """Comma-separated items of a list of quoted strings."""
    items, current, quote = [], "", None
    for ch in body:
        if quote:
            current += ch
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            current += ch
        elif ch == ",":
            items.append(current)
            current = ""
        else:
            current += ch
    if current.strip() or items:
        items.append(current)
    return items


# -- talking to systemd ---------------------------------------------------------------------------------

class Manager:
    """systemd's manager object over one connection: the system bus where
    there is one (what hosts run, and how podman talks to systemd too),
    else systemd's private socket (no bus daemon: a peer-to-peer D-Bus
    connection, root only). $DBUS_SYSTEM_BUS_ADDRESS (unix:path=...)
    names another bus, as libdbus honours it."""

    def __init__(self):
        from .. import dbus
        self.dbus = dbus
        candidates = [(_bus_path(), True), (PRIVATE_SOCKET, False)]
        try:
            self.conn = dbus.connect(candidates, CALL_TIMEOUT)
        except (OSError, dbus.ProtocolError) as e:
            raise Failure(f"--systemd-cgroup: connecting to systemd: {_text(e)}") from None
        if self.conn is None:
            raise Failure("--systemd-cgroup: systemd is not running (no connection at "
                          f"{candidates[0][0]} or {PRIVATE_SOCKET})")
        log.debug(f"systemd: connected through {self.conn.path}")
        self._subscribed = False

    def close(self):
        self.conn.close()

    def call(self, member, signature="", body=()):
        dbus = self.dbus
        start = time.monotonic()
        try:
            # NO_AUTO_START: a bus must not try to activate a systemd that is not running.
            return self.conn.call(_DEST, _OBJECT, _MANAGER, member, signature, body, dbus.NO_AUTO_START)
        except dbus.DBusError as e:
            if e.name in ("org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"):
                raise Failure("--systemd-cgroup: systemd is not running (nobody owns "
                              f"{_DEST} on {self.conn.path})") from None
            raise
        except (OSError, dbus.ProtocolError) as e:
            raise Failure(f"systemd ({self.conn.path}): {member}: {_text(e)}") from None
        finally:
            log.debug(f"systemd: {member}: {time.monotonic() - start:.3f}s")

    def _subscribe(self):
        """JobRemoved signals: on a bus, systemd emits them once a client
        has called Subscribe, and the daemon delivers them to who has a
        match rule; a direct connection (the private socket) gets them
        without asking."""
        if self._subscribed or not self.conn.bus:
            return
        rule = (f"type='signal',sender='{_DEST}',path='{_OBJECT}',interface='{_MANAGER}',"
                "member='JobRemoved'")
        self.conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                       "AddMatch", "s", (rule,))
        self.call("Subscribe")
        self._subscribed = True

    def run_job(self, what, unit, member, signature, body, queued=None):
        """Call a method that queues a job and wait for the job's end;
        anything but `done` raises, naming the unit. `queued()` is called
        once systemd has accepted the job."""
        self._subscribe()
        job, = self.call(member, signature, body)
        if queued is not None:
            queued()
        deadline = time.monotonic() + JOB_TIMEOUT

        def ours(msg):
            return msg.member == "JobRemoved" and msg.body and msg.body[1] == job

        try:
            msg = self.conn.wait_signal(ours, deadline)
        except (OSError, self.dbus.ProtocolError) as e:
            raise Failure(f"systemd: {what} {unit}: {_text(e)}") from None
        if msg is None:
            raise Failure(f"systemd: {what} {unit}: the job did not finish within {JOB_TIMEOUT:g}s")
        result = msg.body[3]
        if result != "done":
            raise Failure(f"systemd: {what} {unit}: the job ended {result!r}"
                          + (" (see `journalctl -u " + unit + "`)" if result == "failed" else ""))

    def start_scope(self, unit, props, queued):
        body = (unit, "replace", props, [])
        for attempt in (1, 2):
            try:
                self.run_job("starting", unit, "StartTransientUnit", "ssa(sv)a(sa(sv))", body, queued)
                return
            except self.dbus.DBusError as e:
                if e.name == "org.freedesktop.systemd1.UnitExists" and attempt == 1:
                    # Likely a failed unit left by an earlier container of
                    # this name: resetting it lets systemd collect it.
                    self.reset_failed(unit)
                    continue
                raise Failure(f"systemd: starting {unit}: {e}") from None

    def stop(self, unit):
        """Stop the unit; one that does not exist (any more) is stopped."""
        try:
            self.run_job("stopping", unit, "StopUnit", "ss", (unit, "replace"))
        except self.dbus.DBusError as e:
            if e.name != "org.freedesktop.systemd1.NoSuchUnit":
                raise Failure(f"systemd: stopping {unit}: {e}") from None

    def reset_failed(self, unit):
        try:
            self.call("ResetFailedUnit", "s", (unit,))
        except self.dbus.DBusError as e:
            if e.name not in ("org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.systemd1.UnitNotFailed",
                              "org.freedesktop.DBus.Error.InvalidArgs"):
                raise Failure(f"systemd: resetting {unit}: {e}") from None

    def set_properties(self, unit, props):
        try:
            self.call("SetUnitProperties", "sba(sv)", (unit, True, props))
        except self.dbus.DBusError as e:
            raise Failure(f"systemd: setting the properties of {unit}: {e}") from None


def _bus_path():
    address = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
    for part in address.split(";"):
        if part.startswith("unix:"):
            for kv in part[5:].split(","):
                if kv.startswith("path="):
                    return kv[5:]
    return BUS_SOCKET


def _text(e):
    return os_error_text(e) if isinstance(e, OSError) else str(e)


# -- planning and the container's cgroup -------------------------------------------------------------

def plan(spec, cid, host):
    """A Plan for the container's scope; like cgroups.plan, checked against
    this host before anything exists."""
    from . import resources
    if os.geteuid() != 0:
        raise Unsupported("--systemd-cgroup without root (a systemd user manager's scopes)")
    # Connected first, so that a host without systemd says so, and before
    # anything exists. The processes forked before the unit starts close
    # the socket (they close every fd they do not own).
    manager = Manager()
    if host.mode != "v2":
        raise Unsupported(f"--systemd-cgroup on a cgroup {host.mode} host (only cgroup v2 is handled)")
    if host.v2.mount_root != "/":
        raise Unsupported("--systemd-cgroup inside a cgroup namespace "
                          f"(cgroup2 at {host.v2.mountpoint} shows {host.v2.mount_root})")
    linux = spec.linux
    slice_, unit, path = parse_path(linux.cgroups_path, cid)
    steps, _ = resources.plan(linux.resources, host, devices=linux.devices)
    props = [("Description", ("s", f"runsc-py container {cid}")), ("Slice", ("s", slice_)),
             ("Delegate", ("b", True)), ("DefaultDependencies", ("b", False)),
             ("MemoryAccounting", ("b", True)), ("CPUAccounting", ("b", True)),
             ("IOAccounting", ("b", True)), ("TasksAccounting", ("b", True))]
    props += resource_properties(linux.resources, linux.devices)
    props += annotation_properties(spec.annotations)
    return Plan(unit, host.v2.mountpoint + path, props, steps, manager)


class Plan:
    def __init__(self, unit, path, props, steps, manager):
        self.unit = unit
        self.path = path
        self.props = props
        self.steps = steps
        self.manager = manager

    def create(self, journal):
        """The container's cgroup, its unit not started yet: a scope needs
        processes, and systemd starts it with the first ones that `enter`
        it. The journal names the unit before it exists."""
        cg = SystemdCgroup({UNIFIED: Dir(UNIFIED, 2, self.path, 0)}, journal, self.unit, started=False)
        cg.pending = self
        cg._manager = self.manager
        cg.save_journal()
        return cg


class SystemdCgroup(Cgroup):
    """A container's cgroup that is a systemd scope."""

    def __init__(self, dirs, journal, unit, started):
        super().__init__(dirs, journal)
        self.unit = unit
        self.started = started    # systemd accepted our start job: the unit is ours
        self.pending = None       # the Plan, until the unit is started
        self._manager = None

    def record(self):
        out = super().record()
        out["systemd"] = {"unit": self.unit, "started": self.started}
        return out

    @classmethod
    def from_record(cls, record, journal=None):
        cg = Cgroup.from_record(record, journal)
        entry = record.get("systemd") or {}
        unit = entry.get("unit")
        if cg is None or not isinstance(unit, str) or not unit.endswith(".scope"):
            return None
        return cls(cg.dirs, journal, unit, entry.get("started") is True)

    def manager(self):
        if self._manager is None:
            self._manager = Manager()
        return self._manager

    def enter(self, pids):
        """The first processes start the unit; later ones (exec, a pod
        member's sandbox process) are written to its cgroup.procs."""
        if self.pending is None:
            return super().enter(pids)
        plan, self.pending = self.pending, None
        props = plan.props + [("PIDs", ("au", [p for p in pids if p]))]
        self.manager().start_scope(self.unit, props, self._queued)
        path = self.dirs[UNIFIED].path
        if not os.path.isdir(path):
            raise Failure(f"systemd started {self.unit}, but its cgroup {path} does not exist "
                          "(is systemd using the cgroup2 hierarchy mounted here?)")
        self.apply(plan.steps)

    def _queued(self):
        self.started = True
        self.save_journal()

    def update(self, merged):
        props = resource_properties(merged, devices=None)
        if props:
            self.manager().set_properties(self.unit, props)
        super().update(merged)

    def remove(self):
        """Kill what is left in the scope, stop the unit and reset its
        failed state; a unit that is gone already is removed."""
        errors = []
        if not self.started:
            self._unlink_journal()  # not ours: nothing to stop
            return errors
        d = self.dirs[UNIFIED]
        if os.path.isdir(d.path):
            try:
                self._empty(d.path)
            except OSError as e:
                # ENODEV: systemd removed the emptied scope's cgroup while we wrote to it.
                if e.errno not in (errno.ENOENT, errno.ENODEV):
                    errors.append(f"emptying {self.unit}: {os_error_text(e)}")
        try:
            manager = self.manager()
            manager.stop(self.unit)
            manager.reset_failed(self.unit)
        except Failure as e:
            errors.append(str(e))
        if not errors:
            self._unlink_journal()
        return errors

    def _unlink_journal(self):
        if self.journal is not None:
            try:
                os.unlink(self.journal)
            except FileNotFoundError:
                pass

    def _empty(self, path):
        """SIGKILL every process of the scope, bounded: stopping a scope
        with processes in it would have systemd send SIGTERM and wait up to
        its stop timeout."""
        self._thaw_quietly()
        if v2.can_kill(path):
            try:
                v2.kill(path)
            except FileNotFoundError:
                return
        else:
            for pid in files.pids(path):
                try:
                    os.kill(pid, signals.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            if not v2.wait_empty(path, EMPTY_TIMEOUT):
                raise TimeoutError(errno.ETIMEDOUT, f"processes are left {EMPTY_TIMEOUT:g}s after SIGKILL", path)
        except FileNotFoundError:
            pass  # systemd removed it: the scope emptied and stopped
