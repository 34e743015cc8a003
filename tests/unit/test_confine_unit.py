"""sandbox.confine and sandbox.seccomp without a container: capability
masks (including capabilities a kernel lacks), the checks done at create,
and how profiles compile (libseccomp, no kernel load)."""

import errno

import pytest

from runsc_py.errors import Failure
from sandbox import confine, seccomp
from specs.model import Capabilities, Linux, Namespace, Rlimit
from specs.names import CAPABILITIES

USER_NS = Linux(namespaces=(Namespace("user"), Namespace("mount")))


def bit(*names):
    return sum(1 << CAPABILITIES[n] for n in names)


def test_capabilities_a_kernel_lacks_are_left_out_and_named():
    # a kernel whose last capability is CAP_AUDIT_READ (37): no PERFMON, BPF, CHECKPOINT_RESTORE
    caps = confine.Capabilities(Capabilities(bounding=("CAP_CHOWN", "CAP_BPF"), permitted=("CAP_PERFMON",),
                                             effective=("CAP_CHECKPOINT_RESTORE", "CAP_AUDIT_READ")), top=37)
    assert caps.unknown == {"CAP_BPF", "CAP_PERFMON", "CAP_CHECKPOINT_RESTORE"}
    assert (caps.bounding, caps.permitted, caps.effective) == (bit("CAP_CHOWN"), 0, bit("CAP_AUDIT_READ"))


def test_missing_sets_are_empty():
    caps = confine.Capabilities(None, top=40)
    assert [getattr(caps, k) for k in confine.CAP_KINDS] == [0] * 5
    caps = confine.Capabilities(Capabilities(effective=("CAP_KILL",)), top=40)
    assert (caps.bounding, caps.effective) == (0, bit("CAP_KILL"))


def test_unraisable_ambient_capabilities():
    caps = confine.Capabilities(Capabilities(permitted=("CAP_KILL", "CAP_CHOWN"), inheritable=("CAP_KILL",),
                                             ambient=("CAP_KILL", "CAP_CHOWN", "CAP_NET_RAW")), top=40)
    assert caps.unraisable_ambient() == bit("CAP_CHOWN", "CAP_NET_RAW")


@pytest.mark.parametrize("sets, message", [
    (Capabilities(bounding=("CAP_KILL",), permitted=("CAP_KILL",), effective=("CAP_KILL", "CAP_CHOWN")),
     "process.capabilities.effective: CAP_CHOWN not in process.capabilities.permitted"),
    (Capabilities(bounding=("CAP_KILL",), inheritable=("CAP_NET_RAW", "CAP_CHOWN")),
     "process.capabilities.inheritable: CAP_CHOWN, CAP_NET_RAW not in process.capabilities.bounding"),
])
def test_sets_capset_refuses_are_refused_by_name(sets, message):
    with pytest.raises(Failure, match=message):
        confine.check_capabilities(sets, USER_NS)


def test_in_a_user_namespace_every_capability_is_available():
    confine.check_capabilities(Capabilities(bounding=("CAP_SYS_RESOURCE",), permitted=("CAP_SYS_RESOURCE",)),
                               USER_NS)


def test_hard_limit_above_the_runtimes_is_refused_without_cap_sys_resource():
    import resource
    if confine._can_raise_hard_limits():
        pytest.skip("this process may raise hard limits")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with pytest.raises(Failure, match=r"process.rlimits RLIMIT_NOFILE: hard limit \d+ is above"):
        confine.check_rlimits([Rlimit("RLIMIT_NOFILE", 1, hard + 1)])
    confine.check_rlimits([Rlimit("RLIMIT_NOFILE", 1, hard)])


def test_step_failures_name_the_field_with_a_hint():
    def refuse():
        raise OSError(errno.EPERM, "Operation not permitted")
    with pytest.raises(confine.StepFailed, match=r"^process.rlimits RLIMIT_NOFILE: operation not permitted "
                                                 r"\(raising a hard limit needs CAP_SYS_RESOURCE\)$"):
        confine._step("process.rlimits RLIMIT_NOFILE", refuse, hint={errno.EPERM: "raising a hard limit needs "
                                                                                 "CAP_SYS_RESOURCE"})


# -- seccomp profiles ---------------------------------------------------------------------------

def test_unknown_syscalls_are_skipped_and_the_rest_compiled():
    f = seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["no_such_call", "mkdir"], "action": "SCMP_ACT_ERRNO"}]})
    assert not f.wants_listener


def test_notify_rules_want_a_listener():
    f = seccomp.build({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x", "syscalls": [
        {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]})
    assert f.wants_listener


@pytest.mark.parametrize("profile, message", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "linux.seccomp.defaultErrnoRet: SCMP_ACT_ALLOW"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                                                        "errnoRet": 4096}]},
     r"linux.seccomp.syscalls\[0\].errnoRet: 4096 is out of range"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]},
        {"names": ["chmod"], "action": "SCMP_ACT_KILL", "args": [{"index": 1, "value": 5, "op": "SCMP_CMP_EQ"}]}]},
     r"linux.seccomp.syscalls\[1\] \(chmod\): another rule gives it a different action"),
])
def test_profiles_libseccomp_cannot_compile_are_refused(profile, message):
    with pytest.raises(Failure, match=message):
        seccomp.build(profile)


def test_the_native_architecture_is_supported():
    import os
    native = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(os.uname().machine)
    if native is None:
        pytest.skip("unknown machine")
    assert native in seccomp.supported_arches()
    assert set(seccomp.supported_flags()) <= set(seccomp.FLAG_ATTRS)
