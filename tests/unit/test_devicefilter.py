"""The device policy (runsc_py/cgroups/devicefilter.py): what a sequence of
linux.resources.devices entries means (the v1 devices controller's rules),
the v1 writes of create and update, and the cgroup v2 program, loaded into
this kernel's verifier for every rule shape (no attach: that is
tests/integration/test_devices.py)."""

import errno
import itertools
import os

import pytest

from runsc_py.cgroups import devicefilter as df
from runsc_py.cgroups import resources
from runsc_py.errors import Failure

DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


def rule(allow, kind, major=None, minor=None, access="rwm"):
    entry = {"allow": allow, "type": kind, "access": access}
    if major is not None:
        entry["major"] = major
    if minor is not None:
        entry["minor"] = minor
    return entry


def policy(*entries, devices=()):
    return df.emulate(df.sequence(list(entries), devices))


class Dev:
    def __init__(self, kind, major, minor):
        self.type, self.major, self.minor = kind, major, minor


def _bpf_available():
    try:
        df.Program(df.Policy()).load().close()
        return True
    except OSError:
        return False


needs_bpf = pytest.mark.skipif(not _bpf_available(), reason="this host does not let the tests load BPF programs")


# -- the rules -------------------------------------------------------------------------------------

def test_entries_as_cgroup_lines():
    assert df.parse(DENY_ALL, "f").line() == "a"
    assert df.parse(rule(True, "c", 1, 3, "rw"), "f").line() == "c 1:3 rw"
    assert df.parse(rule(True, "b", 8, access="r"), "f").line() == "b 8:* r"
    assert df.parse({"allow": True, "type": "c", "major": -1, "minor": -1}, "f").line() == "c *:* rwm"
    assert df.parse({"allow": True, "type": "b", "major": 7, "minor": 2}, "f").access == df.RWM
    with pytest.raises(Failure, match=r"^f\.major: 4294967295 is not a device number"):
        df.parse(rule(True, "c", (1 << 32) - 1), "f")


def test_the_sequence_denies_first_and_ends_with_the_defaults_and_linux_devices():
    rules = df.sequence([rule(True, "c", 4, 1, "rw")], [Dev("c", 10, 229), Dev("u", 4, 2), Dev("p", None, None)])
    assert [repr(r) for r in rules[:2]] == ["deny a", "allow c 4:1 rw"]
    assert [r.field for r in rules[:2]] == ["linux.resources.devices", "linux.resources.devices[0]"]
    assert [repr(r) for r in rules[2:2 + len(df.DEFAULT_RULES)]] == [repr(r) for r in df.DEFAULT_RULES]
    assert [(repr(r), r.field) for r in rules[-2:]] == [("allow c 10:229 rwm", "linux.devices[0]"),
                                                        ("allow c 4:2 rwm", "linux.devices[1]")]


def test_no_rules_and_deny_all_mean_the_default_devices_only():
    for p in (policy(), policy(DENY_ALL)):
        assert not p.default_allow
        assert p.allows("c", 1, 3, df.ACCESS["r"] | df.ACCESS["w"])
        assert p.allows("c", 136, 7, df.RWM)
        assert p.allows("b", 8, 0, df.ACCESS["m"])          # mknod of anything, as runc
        assert not p.allows("b", 8, 0, df.ACCESS["r"])      # but no opening it
        assert not p.allows("c", 1, 1, df.ACCESS["r"])      # /dev/mem
        assert not p.allows("c", 10, 229, df.ACCESS["r"])   # /dev/fuse is not a default


def test_allow_all_is_everything_and_a_rule_after_it_counts():
    assert policy(ALLOW_ALL).allows_all()
    assert policy(DENY_ALL, ALLOW_ALL).allows_all()
    # An `a` entry resets whatever came before, whatever numbers it names.
    assert policy(rule(True, "b", 7), {"allow": False, "type": "a", "major": 1, "access": "r"}).exceptions == \
        policy().exceptions
    p = policy(ALLOW_ALL, rule(False, "b", 8, access="rw"))
    assert p.default_allow and not p.allows_all()
    assert not p.allows("b", 8, 1, df.ACCESS["r"])
    assert not p.allows("b", 8, 1, df.ACCESS["r"] | df.ACCESS["w"])  # the kernel: any requested bit denied
    assert p.allows("b", 8, 1, df.ACCESS["m"]) and p.allows("b", 9, 0, df.ACCESS["r"])


def test_later_rules_override_earlier_ones_of_the_same_numbers():
    p = policy(DENY_ALL, rule(True, "b", 7, access="rwm"), rule(False, "b", 7, access="w"))
    assert p.allows("b", 7, 3, df.ACCESS["r"]) and not p.allows("b", 7, 3, df.ACCESS["w"])
    assert not p.allows("b", 7, 3, df.ACCESS["r"] | df.ACCESS["w"])
    p = policy(DENY_ALL, rule(True, "b", 7, access="r"), rule(True, "b", 7, access="w"))
    assert p.allows("b", 7, 3, df.ACCESS["r"] | df.ACCESS["w"])
    # One exception must hold every requested bit (the kernel does not add up exceptions).
    p = policy(DENY_ALL, rule(True, "b", 7, access="r"), rule(True, "b", 7, 3, "w"))
    assert not p.allows("b", 7, 3, df.ACCESS["r"] | df.ACCESS["w"])


@pytest.mark.parametrize("entries, wider", [
    ([DENY_ALL, rule(True, "c", access="rw"), rule(False, "c", 4, 1)], "allow c *:* rw"),
    ([DENY_ALL, rule(True, "b", 8), rule(False, "b", 8, 0, "r")], "allow b 8:* rwm"),
    ([DENY_ALL, rule(True, "b", None, 0), rule(False, "b", 8, 0)], "allow b *:0 rwm"),
])
def test_a_hole_in_a_wildcard_is_refused_as_the_kernel_would_ignore_it(entries, wider):
    with pytest.raises(Failure) as info:
        policy(*entries)
    assert str(info.value).startswith("linux.resources.devices[2]: deny ")
    assert f"inside the wider rule {wider}" in str(info.value)


def test_default_devices_stay_usable_or_the_rules_are_refused():
    # Under an allow-all, a denial of a default device is undone by the defaults...
    p = policy(ALLOW_ALL, rule(False, "c", 1, 3), rule(False, "c", 5, 0, "rw"))
    assert p.allows("c", 1, 3, df.RWM) and p.allows("c", 5, 0, df.RWM)
    # ...but one inside a wildcard cannot be: refused, naming the default.
    with pytest.raises(Failure, match=r"default rule c 1:3 rwm: /dev/null\): allow c 1:3 rwm would be ignored: "
                                      r"it lies inside the wider rule deny c 1:\* rwm"):
        policy(ALLOW_ALL, rule(False, "c", 1))


def test_transition_reaches_the_target_changing_only_what_differs():
    shapes = [[DENY_ALL], [DENY_ALL, rule(True, "b", 7)], [DENY_ALL, rule(True, "b", 7, 0, "r")],
              [ALLOW_ALL], [ALLOW_ALL, rule(False, "b", 8, access="w")], [DENY_ALL, rule(True, "c", 10, 229)]]
    for old, new in itertools.product(shapes, shapes):
        before, after = policy(*old), policy(*new)
        writes = before.transition(after)
        state = policy(*old)
        for r in writes:
            state.apply(r, refuse_holes=False)
        assert (state.default_allow, state.exceptions) == (after.default_allow, after.exceptions), (old, new)
        if before.default_allow == after.default_allow:
            assert all(r.kind != "a" for r in writes)
            touched = {(r.kind, r.major, r.minor) for r in writes}
            assert not touched & {k for k, v in after.exceptions.items() if before.exceptions.get(k) == v}
    assert policy(DENY_ALL).transition(policy(DENY_ALL)) == []
    assert [repr(r) for r in policy(DENY_ALL).transition(policy(DENY_ALL, rule(True, "b", 7)))] == ["allow b 7:* rwm"]


# -- the plan ------------------------------------------------------------------------------------

class Where:
    def __init__(self, devices_v1=False, v2=True):
        self.devices_v1, self.v2 = devices_v1, v2

    def holder(self, controller):
        return ("devices", 1) if controller == "devices" and self.devices_v1 else None

    def unified(self):
        return ("unified", frozenset()) if self.v2 else None


def plan(entries, where, **kw):
    steps, _ = resources.plan({"devices": entries}, where, **kw)
    return steps


def test_v1_writes_the_sequence_at_create_and_the_difference_at_update():
    steps = plan([DENY_ALL, rule(True, "c", 4, 1, "rw")], Where(devices_v1=True), devices=[Dev("c", 10, 229)])
    lines = [(s.field, s.args) for s in steps]
    assert lines[:3] == [("linux.resources.devices", ("devices.deny", "a")),
                         ("linux.resources.devices[0]", ("devices.deny", "a")),
                         ("linux.resources.devices[1]", ("devices.allow", "c 4:1 rw"))]
    assert ("linux.resources.devices (default rule c 1:3 rwm: /dev/null)", ("devices.allow", "c 1:3 rwm")) in lines
    assert lines[-1] == ("linux.devices[0]", ("devices.allow", "c 10:229 rwm"))
    assert {s.fn.__name__ for s in steps} == {"write"}
    update = plan([DENY_ALL, rule(True, "b", 7, access="r")], Where(devices_v1=True), update=True,
                  previous=[DENY_ALL, rule(True, "c", 4, 1, "rw")])
    assert [s.args for s in update] == [("devices.deny", "c 4:1 rw"), ("devices.allow", "b 7:* r")]


@needs_bpf
def test_v2_loads_a_program_at_plan_time():
    steps = plan([DENY_ALL], Where())
    assert [(s.key, s.field, s.fn.__name__) for s in steps] == [("unified", "linux.resources.devices", "install")]
    prog = steps[0].args[0]
    assert prog.fd is not None and len(prog) == len(df.program(policy(DENY_ALL))) // 8
    prog.close()


def test_v2_allow_all_needs_no_program_and_update_to_it_detaches():
    assert plan([ALLOW_ALL], Where()) == []
    assert [s.fn.__name__ for s in plan([ALLOW_ALL], Where(), update=True, previous=[DENY_ALL])] == ["uninstall"]


def test_without_any_device_cgroup_rules_are_refused():
    assert plan([], Where(v2=False)) == []
    assert plan([ALLOW_ALL], Where(v2=False)) == []
    with pytest.raises(Failure, match="^linux.resources.devices: the devices controller is not available"):
        plan([DENY_ALL], Where(v2=False))


def test_a_refused_load_refuses_the_rules_naming_the_field(monkeypatch):
    def refuse(self):
        raise PermissionError(errno.EPERM, "Operation not permitted", "bpf(BPF_PROG_LOAD)")
    monkeypatch.setattr(df.Program, "load", refuse)
    with pytest.raises(Failure) as info:
        plan([DENY_ALL], Where())
    assert str(info.value) == ("linux.resources.devices: the cgroup v2 eBPF device filter cannot be loaded: "
                               "operation not permitted (it needs CAP_BPF or CAP_SYS_ADMIN in the host's user "
                               "namespace)")
    assert plan([ALLOW_ALL], Where()) == []   # allows everything: nothing to enforce
    assert plan([], Where()) == []            # asks nothing


# -- the program and the verifier --------------------------------------------------------------

SHAPES = {
    "default deny": [DENY_ALL],
    "no rules": [],
    "allow all": [ALLOW_ALL, rule(False, "c", 1, 1)],
    "default allow, wildcards": [ALLOW_ALL, rule(False, "b", 8), rule(False, "c", 13, access="w"),
                                 rule(False, "c", None, 77, "rm")],
    "block major": [DENY_ALL, rule(True, "b", 7, access="rwm")],
    "block major:minor": [DENY_ALL, rule(True, "b", 7, 3, "r")],
    "any minor of a char major": [DENY_ALL, rule(True, "c", 136)],
    "any major of a minor": [DENY_ALL, rule(True, "c", None, 5, "w")],
    "every access subset": [DENY_ALL] + [rule(True, "c", 200, i, a)
                                         for i, a in enumerate(("r", "w", "m", "rw", "rm", "wm", "rwm"))],
    "deny after allow": [DENY_ALL, rule(True, "b", 8, 0), rule(False, "b", 8, 0, "w")],
    "u32 numbers": [DENY_ALL, rule(True, "c", (1 << 32) - 2, (1 << 31) + 5), rule(True, "b", 1 << 31)],
    "60 devices": [DENY_ALL] + [rule(True, "b", 240 + i // 10, i % 10, "rw") for i in range(60)],
}


def test_the_program_for_the_default_rules():
    insns = df.program(policy(DENY_ALL))
    assert len(insns) % 8 == 0
    # Prologue 6, the two mknod wildcards 6 each, 9 exact rwm devices 5 each,
    # /dev/pts/* 4, the default 2.
    assert len(insns) // 8 == 6 + 2 * 6 + 9 * 5 + 4 + 2 == 69


@needs_bpf
@pytest.mark.parametrize("shape", SHAPES)
def test_the_verifier_accepts_every_shape(shape):
    p = policy(*SHAPES[shape], devices=[Dev("c", 10, 229), Dev("b", 7, 0)])
    prog = df.Program(p).load()
    try:
        assert prog.fd >= 0 and prog.load_seconds < 1.0
        assert len(prog) == len(df.program(p)) // 8
    finally:
        prog.close()


@needs_bpf
def test_a_refused_program_reports_the_verifier_log():
    from runsc_py.linux import bpf
    exit_without_r0 = df._insn(df._EXIT)
    with pytest.raises(OSError) as info:
        bpf.load_cgroup_device(exit_without_r0)
    assert info.value.errno == errno.EACCES and info.value.filename == "bpf(BPF_PROG_LOAD)"
    assert "the verifier says: " in info.value.strerror and "R0" in info.value.strerror


@needs_bpf
def test_query_attach_detach_on_a_cgroup2_directory():
    """The syscalls install() uses, on a throw-away cgroup2 directory."""
    from runsc_py.linux import bpf
    base = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    if not os.path.exists(f"{base}/cgroup.procs") or not os.access(base, os.W_OK):
        pytest.skip("no writable cgroup2 hierarchy")
    path = f"{base}/runsc-py-unit-devicefilter-{os.getpid()}"
    os.mkdir(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert bpf.attached(fd) == []
            df.install(path, df.Program(policy(DENY_ALL)).load())
            first = bpf.attached(fd)
            df.install(path, df.Program(policy(DENY_ALL, rule(True, "b", 7))).load())
            second = bpf.attached(fd)
            assert len(first) == len(second) == 1 and first != second
            df.uninstall(path)
            assert bpf.attached(fd) == []
        finally:
            os.close(fd)
    finally:
        os.rmdir(path)


def test_features_say_how_device_rules_are_enforced_here():
    from runsc_py.cgroups import current_host
    from specs.features import features
    said = features()["annotations"]["io.github.runsc-py.devices"]
    host = current_host()
    if host.holder("devices") == ("devices", 1):
        assert said == "cgroup v1 devices controller"
    elif host.v2 is not None and _bpf_available():
        assert said == "cgroup v2 eBPF device filter"
    else:
        assert said.startswith("none: device rules are refused (")
