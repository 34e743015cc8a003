"""The systemd cgroup driver's pure parts: linux.cgroupsPath as
slice:prefix:name, the unit properties, the GVariant text of annotations;
and the D-Bus client: marshalling round trips and a real dbus-daemon
(a private session bus in the test's directory) answering it."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from runsc_py import dbus
from runsc_py.cgroups import systemd
from runsc_py.errors import Failure

MAX = (1 << 64) - 1


# -- linux.cgroupsPath ------------------------------------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    ("", ("system.slice", "runsc-py-c1.scope", "/system.slice/runsc-py-c1.scope")),
    ("system.slice:runsc-py:c1", ("system.slice", "runsc-py-c1.scope", "/system.slice/runsc-py-c1.scope")),
    (":crio:abc", ("system.slice", "crio-abc.scope", "/system.slice/crio-abc.scope")),
    ("-:p:n", ("-.slice", "p-n.scope", "/p-n.scope")),
    ("-.slice:p:n", ("-.slice", "p-n.scope", "/p-n.scope")),
    ("machine.slice::n", ("machine.slice", "n.scope", "/machine.slice/n.scope")),
    ("kubepods-besteffort-pod12.slice:cri-containerd:0f", (
        "kubepods-besteffort-pod12.slice", "cri-containerd-0f.scope",
        "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-0f.scope")),
])
def test_cgroups_path(path, expected):
    assert systemd.parse_path(path, "c1") == expected


@pytest.mark.parametrize("path, words", [
    ("/runsc-py/c1", "not of the form"),
    ("a:b", "not of the form"),
    ("a.slice:b:c:d", "not of the form"),
    ("system:p:n", "is not a slice name"),
    ("a/b.slice:p:n", "is not a slice name"),
    ("a--b.slice:p:n", "is not a valid slice name"),
    ("-a.slice:p:n", "is not a valid slice name"),
    ("a-.slice:p:n", "is not a valid slice name"),
    ("system.slice:p:", "names no unit"),
    ("system.slice:p:a b", "is not a valid systemd unit name"),
    ("system.slice:p:sub.slice", "is not supported"),
])
def test_bad_cgroups_path(path, words):
    with pytest.raises(Failure) as e:
        systemd.parse_path(path, "c1")
    assert str(e.value).startswith("linux.cgroupsPath: ") and words in str(e.value)


# -- properties ---------------------------------------------------------------------------------------

def test_resource_properties():
    props = dict(systemd.resource_properties({
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3", "mems": "0"},
        "pids": {"limit": 100}, "blockIO": {"weight": 500}}, devices=()))
    assert props["MemoryMax"] == ("t", 64 << 20)
    assert props["MemoryLow"] == ("t", 32 << 20)
    assert props["MemorySwapMax"] == ("t", 64 << 20)     # memory+swap minus memory
    assert props["CPUWeight"] == ("t", 39)               # runc's shares -> weight
    assert props["CPUQuotaPerSecUSec"] == ("t", 500000)
    assert props["CPUQuotaPeriodUSec"] == ("t", 100000)
    assert props["AllowedCPUs"] == ("ay", bytes([0b1011]))
    assert props["AllowedMemoryNodes"] == ("ay", b"\x01")
    assert props["TasksMax"] == ("t", 100)
    assert props["IOWeight"] == ("t", 4950)
    assert props["DevicePolicy"] == ("s", "strict")
    allow = dict(props["DeviceAllow"][1])
    assert allow["/dev/char/1:3"] == "rwm" and allow["char-*"] == "m" and allow["block-*"] == "m"


def test_device_allow_follows_the_device_rules():
    # deny all, then a loop-device rule: systemd allows the union of what
    # is allowed (the runtime's own filter enforces the order)
    allow = dict(systemd.device_allow([{"allow": False, "access": "rwm"},
                                       {"allow": True, "type": "b", "major": 7, "access": "rw"}], ()))
    assert allow["block-loop"] == "rw" and allow["/dev/char/1:3"] == "rwm"
    # every device allowed: no DevicePolicy at all
    assert systemd.device_allow([{"allow": True, "access": "rwm"}], ()) is None
    props = dict(systemd.resource_properties({"devices": [{"allow": True, "access": "rwm"}]}, devices=()))
    assert "DevicePolicy" not in props and "DeviceAllow" not in props


def test_resource_properties_unlimited_and_rounding():
    props = dict(systemd.resource_properties({"memory": {"limit": -1}, "pids": {"limit": -1},
                                              "cpu": {"quota": 12345, "period": 100000}}, devices=None))
    assert props["MemoryMax"] == ("t", MAX) and props["TasksMax"] == ("t", MAX)
    assert props["MemorySwapMax"] == ("t", MAX)
    assert props["CPUQuotaPerSecUSec"] == ("t", 130000)  # up to the next 1% of a CPU
    assert "DevicePolicy" not in props                    # update leaves devices alone


def test_swap_equal_to_memory_means_no_swap():
    props = dict(systemd.resource_properties({"memory": {"limit": 1 << 20, "swap": 1 << 20}}, devices=None))
    assert props["MemorySwapMax"] == ("t", 0)


def test_cpu_mask():
    assert systemd.cpu_mask([0]) == b"\x01"
    assert systemd.cpu_mask([9]) == b"\x00\x02"
    assert systemd.cpu_mask([]) == b""


@pytest.mark.parametrize("text, expected", [
    ("true", ("b", True)), ("false", ("b", False)), ("uint64 5", ("t", 5)), ("@t 7", ("t", 7)),
    ("int32 -3", ("i", -3)), ("42", ("i", 42)), ("1.5", ("d", 1.5)), ("double 2", ("d", 2.0)),
    ("'inactive-or-failed'", ("s", "inactive-or-failed")), ('"x"', ("s", "x")),
    ("['a', 'b']", ("as", ["a", "b"])), ("[]", ("as", [])),
])
def test_gvariant(text, expected):
    assert systemd.parse_gvariant(text) == expected


@pytest.mark.parametrize("text", ["uint64 'x'", "{1: 2}", "'it\\'s'", "maybe", "[1, 2]"])
def test_gvariant_refused(text):
    with pytest.raises(ValueError):
        systemd.parse_gvariant(text)


def test_annotation_properties():
    props = systemd.annotation_properties({
        "org.systemd.property.TimeoutStopSec": "uint64 5", "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.TimeoutStopUSec": "uint64 9", "io.other": "x"})
    assert props == [("CollectMode", ("s", "inactive-or-failed")), ("TimeoutStopUSec", ("t", 5000000)),
                     ("TimeoutStopUSec", ("t", 9))]
    with pytest.raises(Failure, match=r"^annotations\.org\.systemd\.property\.TimeoutStopSec: "):
        systemd.annotation_properties({"org.systemd.property.TimeoutStopSec": "'soon'"})
    with pytest.raises(Failure, match=r"^annotations\.org\.systemd\.property\.A-B: "):
        systemd.annotation_properties({"org.systemd.property.A-B": "true"})


# -- D-Bus marshalling -------------------------------------------------------------------------------

START = "ssa(sv)a(sa(sv))"


@pytest.mark.parametrize("signature, values", [
    (START, ["runsc-py-c1.scope", "replace",
             [("PIDs", ("au", [1, 2])), ("Delegate", ("b", True)), ("MemoryMax", ("t", MAX)),
              ("AllowedCPUs", ("ay", b"\x0b")), ("DeviceAllow", ("a(ss)", [("/dev/char/1:3", "rwm")])),
              ("CPUWeight", ("t", 100)), ("Description", ("s", ""))], []]),
    ("yqbxdg", [255, 65535, False, -(1 << 63), 0.25, "a(sv)"]),
    ("a{sv}o", [{"a": ("i", -1), "b": ("as", ["x", "yz"])}, "/org/freedesktop/systemd1"]),
    ("uoss", [3, "/org/freedesktop/systemd1/job/3", "x.scope", "done"]),
    ("aay(yt)", [[b"", b"\x01\x02"], (1, 2)]),
])
def test_marshal_round_trip(signature, values):
    data = dbus.marshal(signature, values)
    assert dbus.unmarshal(signature, data) == values


def test_marshal_layout():
    """Bytes the specification fixes: a string is length, text, NUL; an
    array's length excludes the padding before its first 8-aligned element."""
    assert dbus.marshal("s", ["ab"]) == b"\x02\0\0\0ab\0"
    assert dbus.marshal("a(t)", [[(1,)]]) == b"\x08\0\0\0" + b"\0" * 4 + b"\x01" + b"\0" * 7
    assert dbus.marshal("yv", [1, ("u", 7)]) == b"\x01\x01u\0\x07\0\0\0"


def test_message_round_trip():
    body = ["runsc-py-c1.scope", "replace", [("Slice", ("s", "system.slice"))], []]
    msg = dbus.Message(dbus.METHOD_CALL, 9, {1: "/org/freedesktop/systemd1", 2: "org.freedesktop.systemd1.Manager",
                                             3: "StartTransientUnit", 6: "org.freedesktop.systemd1"}, body)
    data = msg.to_bytes(START)
    assert dbus.needed(data[:16]) == len(data)
    back = dbus.Message.parse(data)
    assert (back.type, back.serial, back.member, back.body) == (dbus.METHOD_CALL, 9, "StartTransientUnit", body)
    assert back.fields[8] == START


@pytest.mark.parametrize("signature", ["a", "(s", "(sv", "z", "a{s"])
def test_bad_signature(signature):
    with pytest.raises(dbus.ProtocolError):
        dbus.split_signature(signature)


def test_truncated_message():
    data = dbus.marshal("s", ["hello"])
    with pytest.raises(dbus.ProtocolError):
        dbus.unmarshal("s", data[:-2])


# -- a real bus -----------------------------------------------------------------------------------------

@pytest.fixture
def bus(tmp_path):
    """A dbus-daemon of our own (the session configuration: anyone of this
    uid may connect), its socket in the test's directory."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed")
    path = str(tmp_path / "bus")
    proc = subprocess.Popen([daemon, "--session", "--nofork", "--nopidfile", f"--address=unix:path={path}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(path):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "dbus-daemon did not make its socket within 10s"
            time.sleep(0.01)
        yield path
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_bus_calls_errors_and_signals(bus):
    with dbus.connect([(bus, True)], 5) as conn:
        names = conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ListNames")[0]
        assert "org.freedesktop.DBus" in names and any(n.startswith(":") for n in names)
        with pytest.raises(dbus.DBusError) as e:
            conn.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                      "Subscribe", flags=dbus.NO_AUTO_START)
        assert e.value.name == "org.freedesktop.DBus.Error.NameHasNoOwner"
        rule = "type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged'"
        conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "AddMatch", "s", (rule,))
        reply = conn.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "RequestName",
                          "su", ("io.runsc_py.Test", 0))
        assert reply == [1]  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
        msg = conn.wait_signal(lambda m: m.member == "NameOwnerChanged" and m.body[0] == "io.runsc_py.Test",
                               time.monotonic() + 5)
        assert msg is not None and msg.body[1] == "" and msg.body[2].startswith(":")
        assert conn.wait_signal(lambda m: False, time.monotonic() + 0.05) is None


def test_bus_without_systemd(bus, monkeypatch):
    """A bus where nobody owns org.freedesktop.systemd1: one line saying so."""
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={bus}")
    manager = systemd.Manager()
    try:
        assert manager.conn.path == bus and manager.conn.bus
        with pytest.raises(Failure, match=r"^--systemd-cgroup: systemd is not running \(nobody owns "):
            manager.stop("x.scope")
    finally:
        manager.close()


def test_connect_skips_missing_and_stale_sockets(tmp_path, bus):
    import _socket
    stale = str(tmp_path / "stale")
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.bind(stale)
    s.close()  # bound, nobody listening: connect is refused
    assert dbus.connect([(str(tmp_path / "none"), True), (stale, False)], 1) is None
    with dbus.connect([(stale, True), (bus, True)], 5) as conn:
        assert conn.path == bus


def test_import_cost():
    """The client loads nothing beyond what the CLI has already."""
    code = ("import sys; import runsc_py.cli, runsc_py.linux.unix; before = set(sys.modules); "
            "import runsc_py.dbus; print(sorted(set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['runsc_py.dbus']"


# -- the record ---------------------------------------------------------------------------------------

def test_record_round_trip_and_load(tmp_path):
    from runsc_py import cgroups
    record = {"systemd": {"unit": "runsc-py-c1.scope", "started": True},
              "dirs": {"unified": {"path": "/sys/fs/cgroup/system.slice/runsc-py-c1.scope", "created": 0}}}
    cg = cgroups.load(record)
    assert isinstance(cg, systemd.SystemdCgroup) and cg.unit == "runsc-py-c1.scope" and cg.started
    assert cg.record() == record
    assert cgroups.load({"systemd": {"unit": "x"}, "dirs": record["dirs"]}) is None  # not a scope


def test_a_unit_never_started_is_not_touched(tmp_path):
    """A create that failed before systemd accepted its start job (e.g.
    UnitExists: another container's unit) leaves that unit alone; its
    journal goes, no D-Bus needed."""
    from runsc_py import cgroups
    journal = str(tmp_path / ".c1.cgroup")
    cg = systemd.Plan("x-same.scope", "/sys/fs/cgroup/system.slice/x-same.scope", [], [], None).create(journal)
    recovered = cgroups.recover(journal)
    assert isinstance(recovered, systemd.SystemdCgroup) and not recovered.started
    assert recovered.remove() == [] and not os.path.exists(journal)
    assert cg.remove() == []
