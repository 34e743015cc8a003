"""The config.json validator (specs.config): every malformed document is
refused with the exact JSON path of each problem, valid ones become the
right model, unknown fields are kept, and the CLI turns a bad bundle into
one line and an empty --root."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from specs import model
from specs.config import MAX_CONFIG, MAX_DEPTH, ConfigError, load_bundle, parse_config, parse_process
from specs.default import OCI_VERSION, default_spec

BUNDLE = "/bundle"
RUNTIME = [sys.executable, "-m", "runsc_py"]


# -- editing a document by JSON path --------------------------------------------------------

def _steps(path):
    """"a.b[1].c" -> ["a", "b", 1, "c"]"""
    return [int(t[1:-1]) if t.startswith("[") else t for t in re.findall(r"[^.\[\]]+|\[\d+\]", path)]


def _parent(doc, path):
    steps = _steps(path)
    node = doc
    for step in steps[:-1]:
        node = node[step]
    return node, steps[-1]


def setp(path, value):
    def edit(doc):
        node, last = _parent(doc, path)
        node[last] = copy.deepcopy(value)
    return edit


def delp(path):
    def edit(doc):
        node, last = _parent(doc, path)
        del node[last]
    return edit


def addp(path, value):
    """Append `value` to the array at `path` (creating it)."""
    def edit(doc):
        node, last = _parent(doc, path)
        node.setdefault(last, []).append(copy.deepcopy(value))
    return edit


def both(*edits):
    def edit(doc):
        for e in edits:
            e(doc)
    return edit


USERNS = both(addp("linux.namespaces", {"type": "user"}),
              setp("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
              setp("linux.gidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]))


def seccomp(**fields):
    return setp("linux.seccomp", {"defaultAction": "SCMP_ACT_ALLOW", **fields})


def rule(**fields):
    return {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", **fields}


def arg(**fields):
    return {"index": 0, "value": 1, "op": "SCMP_CMP_EQ", **fields}


def problems(doc, bundle=BUNDLE):
    """The error message for `doc` (a dict, or text as is)."""
    data = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    with pytest.raises(ConfigError) as info:
        parse_config(data, bundle)
    return str(info.value)


def edited(edit):
    doc = default_spec()
    edit(doc)
    return doc


# -- malformed documents: (edit of the default spec, the exact message) ---------------------

MALFORMED = [
    # types; a boolean is not an integer, an integer is not a boolean
    ("ociVersion-int", setp("ociVersion", 1), "ociVersion: must be a string, not an integer"),
    ("uid-string", setp("process.user.uid", "0"), "process.user.uid: must be an integer, not a string"),
    ("uid-bool", setp("process.user.uid", True), "process.user.uid: must be an integer, not a boolean"),
    ("gid-float", setp("process.user.gid", 0.0), "process.user.gid: must be an integer, not a number"),
    ("terminal-int", setp("process.terminal", 1), "process.terminal: must be a boolean, not an integer"),
    ("readonly-string", setp("root.readonly", "yes"), "root.readonly: must be a boolean, not a string"),
    ("args-string", setp("process.args", "sh"), "process.args: must be an array, not a string"),
    ("args-item-int", setp("process.args", ["sh", 1]), "process.args[1]: must be a string, not an integer"),
    ("hostname-int", setp("hostname", 7), "hostname: must be a string, not an integer"),
    ("linux-string", setp("linux", "x"), "linux: must be an object, not a string"),
    ("process-array", setp("process", []), "process: must be an object, not an array"),
    ("mounts-object", setp("mounts", {}), "mounts: must be an array, not an object"),
    ("mount-string", setp("mounts[0]", "/proc"), "mounts[0]: must be an object, not a string"),
    ("rlimit-soft-float", setp("process.rlimits[0].soft", 1.5),
     "process.rlimits[0].soft: must be an integer, not a number"),
    ("nnp-string", setp("process.noNewPrivileges", "true"),
     "process.noNewPrivileges: must be a boolean, not a string"),
    ("gids-items", setp("process.user.additionalGids", [1, "2", False]),
     "process.user.additionalGids[1]: must be an integer, not a string; "
     "config.json: process.user.additionalGids[2]: must be an integer, not a boolean"),
    ("caps-array", setp("process.capabilities", ["CAP_KILL"]),
     "process.capabilities: must be an object, not an array"),
    # required fields (null counts as absent)
    ("no-ociVersion", delp("ociVersion"), "ociVersion: is required"),
    ("null-ociVersion", setp("ociVersion", None), "ociVersion: is required"),
    ("no-root", delp("root"), "root: is required"),
    ("no-root-path", delp("root.path"), "root.path: is required"),
    ("empty-root-path", setp("root.path", ""), "root.path: must not be empty"),
    ("no-cwd", delp("process.cwd"), "process.cwd: is required"),
    ("no-args", delp("process.args"), "process.args: is required"),
    ("no-uid", delp("process.user.uid"), "process.user.uid: is required"),
    ("no-gid", delp("process.user.gid"), "process.user.gid: is required"),
    ("no-hook-path", setp("hooks", {"prestart": [{"args": ["x"]}]}), "hooks.prestart[0].path: is required"),
    ("no-namespace-type", addp("linux.namespaces", {"path": "/proc/1/ns/ipc"}),
     "linux.namespaces[6].type: is required"),
    ("no-device-type", setp("linux.devices", [{"path": "/dev/null", "major": 1, "minor": 3}]),
     "linux.devices[0].type: is required"),
    ("no-device-path", setp("linux.devices", [{"type": "c", "major": 1, "minor": 3}]),
     "linux.devices[0].path: is required"),
    ("no-device-numbers", setp("linux.devices", [{"type": "c", "path": "/dev/null"}]),
     "linux.devices[0].major: is required; config.json: linux.devices[0].minor: is required"),
    ("no-idmap-container-id", both(USERNS, setp("linux.uidMappings", [{"hostID": 1000, "size": 1}])),
     "linux.uidMappings[0].containerID: is required"),
    ("no-idmap-host-id", both(USERNS, setp("linux.gidMappings", [{"containerID": 0, "size": 1}])),
     "linux.gidMappings[0].hostID: is required"),
    ("no-idmap-size", both(USERNS, setp("linux.uidMappings", [{"containerID": 0, "hostID": 1000}])),
     "linux.uidMappings[0].size: is required"),
    ("no-mount-idmap-fields", setp("mounts[0].uidMappings", [{}]),
     "mounts[0].uidMappings[0].containerID: is required; config.json: mounts[0].uidMappings[0].hostID: "
     "is required; config.json: mounts[0].uidMappings[0].size: is required"),
    ("no-rlimit-type", setp("process.rlimits", [{"soft": 1, "hard": 1}]), "process.rlimits[0].type: is required"),
    ("no-rlimit-soft", delp("process.rlimits[0].soft"), "process.rlimits[0].soft: is required"),
    ("no-rlimit-hard", delp("process.rlimits[0].hard"), "process.rlimits[0].hard: is required"),
    ("no-seccomp-default", setp("linux.seccomp", {"syscalls": []}), "linux.seccomp.defaultAction: is required"),
    ("no-syscall-names", seccomp(syscalls=[{"action": "SCMP_ACT_ERRNO"}]),
     "linux.seccomp.syscalls[0].names: is required"),
    ("empty-syscall-names", seccomp(syscalls=[rule(names=[])]), "linux.seccomp.syscalls[0].names: must not be empty"),
    ("empty-syscall-name", seccomp(syscalls=[rule(names=["read", ""])]),
     "linux.seccomp.syscalls[0].names[1]: must not be empty"),
    ("no-syscall-action", seccomp(syscalls=[{"names": ["read"]}]), "linux.seccomp.syscalls[0].action: is required"),
    ("no-arg-index", seccomp(syscalls=[rule(args=[{"value": 1, "op": "SCMP_CMP_EQ"}])]),
     "linux.seccomp.syscalls[0].args[0].index: is required"),
    ("no-arg-value", seccomp(syscalls=[rule(args=[{"index": 1, "op": "SCMP_CMP_EQ"}])]),
     "linux.seccomp.syscalls[0].args[0].value: is required"),
    ("no-arg-op", seccomp(syscalls=[rule(args=[{"index": 1, "value": 2}])]),
     "linux.seccomp.syscalls[0].args[0].op: is required"),
    ("arg-index-6", seccomp(syscalls=[rule(args=[arg(), arg(index=6)])]),
     "linux.seccomp.syscalls[0].args[1].index: 6 is out of range [0, 5]"),
    ("arg-value-negative", seccomp(syscalls=[rule(args=[arg(value=-1)])]),
     "linux.seccomp.syscalls[0].args[0].value: -1 is out of range [0, 18446744073709551615]"),
    ("arg-value-2-64", seccomp(syscalls=[rule(args=[arg(valueTwo=1 << 64)])]),
     "linux.seccomp.syscalls[0].args[0].valueTwo: 18446744073709551616 is out of range [0, 18446744073709551615]"),
    ("arg-op-unknown", seccomp(syscalls=[rule(args=[arg(op="SCMP_CMP_XX")])]),
     "linux.seccomp.syscalls[0].args[0].op: 'SCMP_CMP_XX' is not one of SCMP_CMP_NE, SCMP_CMP_LT, "
     "SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ"),
    # absolute and relative paths
    ("cwd-relative", setp("process.cwd", "tmp"), "process.cwd: 'tmp' must be an absolute path"),
    ("cwd-empty", setp("process.cwd", ""), "process.cwd: '' must be an absolute path"),
    ("hook-relative", setp("hooks", {"poststop": [{"path": "bin/true"}]}),
     "hooks.poststop[0].path: 'bin/true' must be an absolute path"),
    ("namespace-path-relative", setp("linux.namespaces[1]", {"type": "network", "path": "run/netns/x"}),
     "linux.namespaces[1].path: 'run/netns/x' must be an absolute path"),
    ("masked-relative", setp("linux.maskedPaths[2]", "proc/kcore"),
     "linux.maskedPaths[2]: 'proc/kcore' must be an absolute path"),
    ("readonly-relative", setp("linux.readonlyPaths[0]", "proc/bus"),
     "linux.readonlyPaths[0]: 'proc/bus' must be an absolute path"),
    ("device-relative", setp("linux.devices", [{"type": "c", "path": "dev/null", "major": 1, "minor": 3}]),
     "linux.devices[0].path: 'dev/null' must be an absolute path"),
    ("listener-relative", seccomp(listenerPath="run/agent.sock"),
     "linux.seccomp.listenerPath: 'run/agent.sock' must be an absolute path"),
    # process
    ("args-empty", setp("process.args", []), "process.args: must have at least one entry"),
    ("env-no-equals", addp("process.env", "NOVALUE"), "process.env[2]: 'NOVALUE' is not of the form NAME=value"),
    ("env-no-name", addp("process.env", "=x"), "process.env[2]: '=x' is not of the form NAME=value"),
    ("env-not-string", addp("process.env", 5), "process.env[2]: must be a string, not an integer"),
    ("hook-env-no-equals", setp("hooks", {"poststart": [{"path": "/bin/true", "env": ["A=1", "B"]}]}),
     "hooks.poststart[0].env[1]: 'B' is not of the form NAME=value"),
    ("console-size-negative", setp("process.consoleSize", {"height": 24, "width": -1}),
     "process.consoleSize.width: -1 is out of range [0, 4294967295]"),
    ("umask-too-big", setp("process.user.umask", 0o10000), "process.user.umask: 4096 is out of range [0, 4095]"),
    ("unknown-capability", setp("process.capabilities.ambient", ["CAP_KILL", "CAP_FLY"]),
     "process.capabilities.ambient[1]: unknown capability 'CAP_FLY'"),
    ("capability-lower-case", setp("process.capabilities.bounding[0]", "cap_kill"),
     "process.capabilities.bounding[0]: unknown capability 'cap_kill'"),
    ("rlimit-duplicate", addp("process.rlimits", {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 2}),
     "process.rlimits[1].type: RLIMIT_NOFILE is also set by process.rlimits[0]"),
    ("rlimit-unknown", addp("process.rlimits", {"type": "RLIMIT_WISHES", "soft": 1, "hard": 2}),
     "process.rlimits[1].type: unknown rlimit 'RLIMIT_WISHES'"),
    ("rlimit-soft-above-hard", setp("process.rlimits[0].soft", 2048),
     "process.rlimits[0].soft: soft limit 2048 exceeds hard limit 1024"),
    ("rlimit-negative", setp("process.rlimits[0].hard", -1),
     "process.rlimits[0].hard: -1 is out of range [0, 18446744073709551615]"),
    ("oom-above", setp("process.oomScoreAdj", 1001), "process.oomScoreAdj: 1001 is out of range [-1000, 1000]"),
    ("oom-below", setp("process.oomScoreAdj", -1001), "process.oomScoreAdj: -1001 is out of range [-1000, 1000]"),
    ("uid-2-32", setp("process.user.uid", 1 << 32), "process.user.uid: 4294967296 is out of range [0, 4294967295]"),
    ("gid-negative", setp("process.user.gid", -1), "process.user.gid: -1 is out of range [0, 4294967295]"),
    ("scheduler-policy", setp("process.scheduler", {"policy": "SCHED_FAST"}),
     "process.scheduler.policy: 'SCHED_FAST' is not one of SCHED_OTHER, SCHED_FIFO, SCHED_RR, SCHED_BATCH, "
     "SCHED_ISO, SCHED_IDLE, SCHED_DEADLINE"),
    ("scheduler-nice", setp("process.scheduler", {"policy": "SCHED_OTHER", "nice": 20}),
     "process.scheduler.nice: 20 is out of range [-20, 19]"),
    ("io-priority-class", setp("process.ioPriority", {"priority": 1}), "process.ioPriority.class: is required"),
    ("cpu-affinity", setp("process.execCPUAffinity", {"initial": "0-3", "final": "all"}),
     "process.execCPUAffinity.final: 'all' is not a CPU list like 0-3,7"),
    # hooks
    ("hook-timeout-zero", setp("hooks", {"createRuntime": [{"path": "/bin/true", "timeout": 0}]}),
     "hooks.createRuntime[0].timeout: 0 is out of range [1, 2147483647]"),
    ("hook-timeout-negative", setp("hooks", {"startContainer": [{"path": "/bin/true", "timeout": -3}]}),
     "hooks.startContainer[0].timeout: -3 is out of range [1, 2147483647]"),
    ("hooks-array", setp("hooks", [{"path": "/bin/true"}]), "hooks: must be an object, not an array"),
    ("hook-kind-object", setp("hooks", {"createContainer": {"path": "/bin/true"}}),
     "hooks.createContainer: must be an array, not an object"),
    # mounts
    ("mount-no-destination", delp("mounts[1].destination"), "mounts[1].destination: is required"),
    ("mount-empty-destination", setp("mounts[3].destination", ""), "mounts[3].destination: must not be empty"),
    ("mount-options-not-strings", setp("mounts[1].options", ["nosuid", 755]),
     "mounts[1].options[1]: must be a string, not an integer"),
    ("mount-options-string", setp("mounts[1].options", "nosuid"), "mounts[1].options: must be an array, not a string"),
    ("bind-without-source", addp("mounts", {"destination": "/data", "type": "bind", "options": ["rw"]}),
     "mounts[7].source: is required for a bind mount"),
    ("rbind-option-without-source", addp("mounts", {"destination": "/data", "options": ["rbind"]}),
     "mounts[7].source: is required for a bind mount"),
    ("no-type-no-bind", addp("mounts", {"destination": "/data", "source": "/srv", "options": ["ro"]}),
     "mounts[7].type: is required unless the mount is a bind mount"),
    # NUL bytes and text that is no C string, in values and in keys
    ("nul-in-arg", setp("process.args", ["s\0h"]), "process.args[0]: contains a NUL byte"),
    ("nul-in-env", addp("process.env", "A=\0"), "process.env[2]: contains a NUL byte"),
    ("nul-in-root", setp("root.path", "root\0fs"), "root.path: contains a NUL byte"),
    ("nul-in-destination", setp("mounts[0].destination", "/pr\0c"), "mounts[0].destination: contains a NUL byte"),
    ("nul-in-hostname", setp("hostname", "a\0b"), "hostname: contains a NUL byte"),
    ("nul-in-annotation-value", setp("annotations", {"k": "v\0"}), "annotations.k: contains a NUL byte"),
    ("nul-in-annotation-key", setp("annotations", {"k\0": "v"}), "annotations: key 'k\\x00' contains a NUL byte"),
    ("nul-in-sysctl-key", setp("linux.sysctl", {"net.\0": "1"}),
     "linux.sysctl: key 'net.\\x00' contains a NUL byte"),
    ("lone-surrogate", setp("process.cwd", "/\ud800"), "process.cwd: contains an unpaired UTF-16 surrogate"),
    ("lone-surrogate-key", setp("annotations", {"\udc00": "v"}),
     "annotations: key '\\udc00' contains an unpaired UTF-16 surrogate"),
    # ociVersion
    ("ociVersion-0.9", setp("ociVersion", "0.9.0"), "ociVersion: '0.9.0' is not a 1.x version of the runtime spec"),
    ("ociVersion-2", setp("ociVersion", "2.0.0"), "ociVersion: '2.0.0' is not a 1.x version of the runtime spec"),
    ("ociVersion-1.x", setp("ociVersion", "1.x"), "ociVersion: '1.x' is not a 1.x version of the runtime spec"),
    ("ociVersion-empty", setp("ociVersion", ""), "ociVersion: '' is not a 1.x version of the runtime spec"),
    # namespaces and id mappings
    ("namespace-duplicate", addp("linux.namespaces", {"type": "pid"}),
     "linux.namespaces[6].type: namespace 'pid' is also given by linux.namespaces[0]"),
    ("namespace-unknown", addp("linux.namespaces", {"type": "net"}),
     "linux.namespaces[6].type: 'net' is not one of pid, network, mount, ipc, uts, user, cgroup, time"),
    ("mappings-without-userns", setp("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
     "linux.uidMappings: id mappings need a user namespace in linux.namespaces"),
    ("userns-without-mappings", addp("linux.namespaces", {"type": "user"}),
     "linux.uidMappings: a new user namespace needs uidMappings and gidMappings"),
    ("userns-without-gid-mappings", both(USERNS, delp("linux.gidMappings")),
     "linux.uidMappings: a new user namespace needs uidMappings and gidMappings"),
    ("idmap-size-negative", both(USERNS, setp("linux.uidMappings[0].size", -1)),
     "linux.uidMappings[0].size: -1 is out of range [1, 4294967295]"),
    ("idmap-size-zero", both(USERNS, setp("linux.gidMappings[0].size", 0)),
     "linux.gidMappings[0].size: 0 is out of range [1, 4294967295]"),
    ("idmap-past-32-bits", both(USERNS, setp("linux.uidMappings[0]", {"containerID": 0, "hostID": 4294967295,
                                                                      "size": 1})),
     "linux.uidMappings[0].size: hostID 4294967295 + size 1 exceeds 4294967295"),
    ("idmap-host-id-2-32", both(USERNS, setp("linux.uidMappings[0].hostID", 1 << 32)),
     "linux.uidMappings[0].hostID: 4294967296 is out of range [0, 4294967295]"),
    ("device-type-unknown", setp("linux.devices", [{"type": "x", "path": "/dev/x"}]),
     "linux.devices[0].type: 'x' is not one of c, b, u, p"),
    ("propagation-unknown", setp("linux.rootfsPropagation", "public"),
     "linux.rootfsPropagation: 'public' is not one of private, shared, slave, unbindable, "
     "rprivate, rshared, rslave, runbindable"),
    ("time-offset-clock", setp("linux.timeOffsets", {"realtime": {"secs": 1}}),
     "linux.timeOffsets: 'realtime': only monotonic and boottime clocks have offsets"),
    ("time-offset-nanosecs", setp("linux.timeOffsets", {"boottime": {"secs": 1, "nanosecs": 10 ** 9}}),
     "linux.timeOffsets.boottime.nanosecs: 1000000000 is out of range [0, 999999999]"),
    ("personality-domain", setp("linux.personality", {"domain": "BSD"}),
     "linux.personality.domain: 'BSD' is not one of LINUX, LINUX32"),
    # seccomp
    ("seccomp-default-unknown", seccomp(defaultAction="SCMP_ACT_MAYBE"),
     "linux.seccomp.defaultAction: 'SCMP_ACT_MAYBE' is not one of SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, "
     "SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG, "
     "SCMP_ACT_NOTIFY"),
    ("seccomp-action-unknown", seccomp(syscalls=[rule(action="ALLOW")]),
     "linux.seccomp.syscalls[0].action: 'ALLOW' is not one of SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, "
     "SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG, "
     "SCMP_ACT_NOTIFY"),
    ("seccomp-arch-unknown", seccomp(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]),
     "linux.seccomp.architectures[1]: 'SCMP_ARCH_Z80' is not one of SCMP_ARCH_X86, SCMP_ARCH_X86_64, "
     "SCMP_ARCH_X32, SCMP_ARCH_ARM, SCMP_ARCH_AARCH64, SCMP_ARCH_MIPS, SCMP_ARCH_MIPS64, SCMP_ARCH_MIPS64N32, "
     "SCMP_ARCH_MIPSEL, SCMP_ARCH_MIPSEL64, SCMP_ARCH_MIPSEL64N32, SCMP_ARCH_PPC, SCMP_ARCH_PPC64, "
     "SCMP_ARCH_PPC64LE, SCMP_ARCH_S390, SCMP_ARCH_S390X, SCMP_ARCH_PARISC, SCMP_ARCH_PARISC64, "
     "SCMP_ARCH_RISCV64, SCMP_ARCH_LOONGARCH64, SCMP_ARCH_M68K, SCMP_ARCH_SH, SCMP_ARCH_SHEB"),
    ("seccomp-flag-unknown", seccomp(flags=["SECCOMP_FILTER_FLAG_NEW_LISTENER"]),
     "linux.seccomp.flags[0]: 'SECCOMP_FILTER_FLAG_NEW_LISTENER' is not one of SECCOMP_FILTER_FLAG_TSYNC, "
     "SECCOMP_FILTER_FLAG_LOG, SECCOMP_FILTER_FLAG_SPEC_ALLOW, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
    ("notify-without-listener", seccomp(syscalls=[rule(), rule(action="SCMP_ACT_NOTIFY")]),
     "linux.seccomp.syscalls[1].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"),
    ("notify-as-default", seccomp(defaultAction="SCMP_ACT_NOTIFY", listenerPath="/run/agent.sock"),
     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
    ("metadata-without-listener", seccomp(listenerMetadata="hello"),
     "linux.seccomp.listenerMetadata: needs linux.seccomp.listenerPath"),
    ("errno-ret-on-allow", seccomp(syscalls=[rule(action="SCMP_ACT_ALLOW", errnoRet=1)]),
     "linux.seccomp.syscalls[0].errnoRet: SCMP_ACT_ALLOW takes no errno"),
    ("default-errno-ret-on-kill", seccomp(defaultAction="SCMP_ACT_KILL", defaultErrnoRet=1),
     "linux.seccomp.defaultErrnoRet: SCMP_ACT_KILL takes no errno"),
    ("errno-ret-16-bits", seccomp(syscalls=[rule(errnoRet=65536)]),
     "linux.seccomp.syscalls[0].errnoRet: 65536 is out of range [0, 65535]"),
    # resources
    ("memory-limit-string", setp("linux.resources.memory", {"limit": "1G"}),
     "linux.resources.memory.limit: must be an integer, not a string"),
    ("memory-oom-killer-int", setp("linux.resources.memory", {"disableOOMKiller": 1}),
     "linux.resources.memory.disableOOMKiller: must be a boolean, not an integer"),
    ("cpus-not-a-list", setp("linux.resources.cpu", {"cpus": "0-3,x"}),
     "linux.resources.cpu.cpus: '0-3,x' is not a list like 0-3,7"),
    ("mems-open-range", setp("linux.resources.cpu", {"mems": "0-"}),
     "linux.resources.cpu.mems: '0-' is not a list like 0-3,7"),
    ("cpu-shares-negative", setp("linux.resources.cpu", {"shares": -2}),
     "linux.resources.cpu.shares: -2 is out of range [0, 18446744073709551615]"),
    ("pids-without-limit", setp("linux.resources.pids", {}), "linux.resources.pids.limit: is required"),
    ("device-rule-access", addp("linux.resources.devices", {"allow": True, "access": "rwx"}),
     "linux.resources.devices[1].access: 'rwx' may only contain r, w and m"),
    ("device-rule-no-allow", addp("linux.resources.devices", {"access": "r"}),
     "linux.resources.devices[1].allow: is required"),
    ("hugepage-limit-negative", setp("linux.resources.hugepageLimits", [{"pageSize": "2MB", "limit": -1}]),
     "linux.resources.hugepageLimits[0].limit: -1 is out of range [0, 18446744073709551615]"),
    ("blkio-weight", setp("linux.resources.blockIO", {"weight": 5}),
     "linux.resources.blockIO.weight: 5 is out of range [10, 1000] (0 leaves it unset)"),
    ("blkio-leaf-weight-too-big", setp("linux.resources.blockIO", {"leafWeight": 1001}),
     "linux.resources.blockIO.leafWeight: 1001 is out of range [10, 1000] (0 leaves it unset)"),
    ("blkio-device-weight", setp("linux.resources.blockIO", {"weightDevice": [{"major": 8, "minor": 0, "weight": 9}]}),
     "linux.resources.blockIO.weightDevice[0].weight: 9 is out of range [10, 1000] (0 leaves it unset)"),
    ("blkio-throttle-no-rate", setp("linux.resources.blockIO", {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
     "linux.resources.blockIO.throttleReadBpsDevice[0].rate: is required"),
    ("rdma-empty-entry", setp("linux.resources.rdma", {"mlx5_1": {}}),
     "linux.resources.rdma.mlx5_1: needs hcaHandles or hcaObjects"),
    ("unified-value-int", setp("linux.resources.unified", {"memory.max": 5}),
     "linux.resources.unified.memory.max: must be a string, not an integer"),
    # annotations
    ("annotation-not-string", setp("annotations", {"a": "b", "n": 1}), "annotations.n: must be a string, not an integer"),
    ("annotation-empty-key", setp("annotations", {"": "x"}), "annotations: keys must not be empty"),
    ("annotations-array", setp("annotations", ["a=b"]), "annotations: must be an object, not an array"),
]


@pytest.mark.parametrize("edit,expected", [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_malformed_config_names_the_field(edit, expected):
    assert problems(edited(edit)) == "config.json: " + expected


def test_there_are_enough_malformed_cases():
    assert len(MALFORMED) >= 40
    assert len({c[0] for c in MALFORMED}) == len(MALFORMED)


@pytest.mark.parametrize("version", ["1.0.0", "1.0.1", "1.0.2", "1.0.2-dev", "1.1.0", "1.1.0-rc.3", "1.2.0",
                                     "1.2.1", "1.3.0", "1.10.0", "1.0.0+build.5"])
def test_any_1x_version_is_accepted(version):
    doc = default_spec()
    doc["ociVersion"] = version
    assert parse_config(json.dumps(doc), BUNDLE).oci_version == version


@pytest.mark.parametrize("version", ["0.9.0", "2.0.0", "1.x", "", "1", "1.0", "v1.0.0", "01.0.0", "1.01.0",
                                     "1.0.0\n", " 1.0.0", "1.0.0-", "11.0.0"])
def test_other_versions_are_refused(version):
    doc = default_spec()
    doc["ociVersion"] = version
    assert problems(doc) == f"config.json: ociVersion: {version!r} is not a 1.x version of the runtime spec"


# -- documents that are not a config at all -------------------------------------------------

@pytest.mark.parametrize("text,expected", [
    ("", "config.json: invalid JSON: Expecting value: line 1 column 1 (char 0)"),
    # (the wording of json's own messages varies between Python versions)
    ('{"ociVersion": "1.0.0",}', re.compile(r"config\.json: invalid JSON: [^;]+: line 1 column 2[34] \(char 2[23]\)")),
    ('{"ociVersion": NaN}', "config.json: invalid JSON: NaN is not a JSON value"),
    ('{"a": -Infinity}', "config.json: invalid JSON: -Infinity is not a JSON value"),
    (b'{"ociVersion": "\xff"}', "config.json: invalid JSON: 'utf-8' codec can't decode byte 0xff in position 16: "
                                "invalid start byte"),
    ("[]", "config.json: the document must be a JSON object, not an array"),
    ('"config"', "config.json: the document must be a JSON object, not a string"),
    ("null", "config.json: the document must be a JSON object, not null"),
    ("42", "config.json: the document must be a JSON object, not an integer"),
], ids=["empty", "trailing-comma", "nan", "infinity", "not-utf8", "array", "string", "null", "number"])
def test_not_a_json_object(text, expected):
    if isinstance(expected, re.Pattern):
        assert expected.fullmatch(problems(text))
    else:
        assert problems(text) == expected


def nested(depth):
    """The default spec with a value `depth` levels deep (the document itself is level 1)."""
    lists = depth - 1
    return json.dumps(default_spec())[:-1] + ', "deep": ' + "[" * lists + "]" * lists + "}"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 100_000])
def test_deep_nesting_is_a_clean_error(depth):
    assert problems(nested(depth)) == f"config.json: is nested more than {MAX_DEPTH} levels deep"


def test_nesting_up_to_the_limit_is_fine():
    value = parse_config(nested(MAX_DEPTH), BUNDLE).raw["deep"]
    levels = 1
    while value:
        value, levels = value[0], levels + 1
    assert levels == MAX_DEPTH - 1


def test_too_large_is_refused_before_parsing():
    text = json.dumps(default_spec())
    padded = text[:-1] + ', "pad": "' + "x" * MAX_CONFIG + '"}'
    assert problems(padded) == "config.json: is larger than 8 MiB"


def test_every_problem_is_reported_at_once():
    doc = default_spec()
    doc["ociVersion"] = "2.0.0"
    del doc["root"]["path"]
    doc["process"]["args"] = []
    doc["process"]["user"]["uid"] = -1
    doc["mounts"][4]["options"] = [None]
    doc["hooks"] = {"prestart": [{"path": "relative"}]}
    doc["linux"]["namespaces"].append({"type": "uts"})
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc), BUNDLE)
    expected = [
        ("ociVersion", "'2.0.0' is not a 1.x version of the runtime spec"),
        ("root.path", "is required"),
        ("process.args", "must have at least one entry"),
        ("process.user.uid", "-1 is out of range [0, 4294967295]"),
        ("mounts[4].options[0]", "must be a string, not null"),
        ("hooks.prestart[0].path", "'relative' must be an absolute path"),
        ("linux.namespaces[6].type", "namespace 'uts' is also given by linux.namespaces[3]"),
    ]
    assert info.value.problems == expected
    assert str(info.value) == "; ".join(f"config.json: {p}: {w}" for p, w in expected)
    assert "\n" not in str(info.value)


# -- valid documents become the right model -------------------------------------------------

def test_default_spec_model():
    spec = parse_config(json.dumps(default_spec()), BUNDLE)
    assert spec.oci_version == OCI_VERSION
    assert spec.root == model.Root(path="/bundle/rootfs", readonly=True)
    assert spec.hostname == "runsc-py" and spec.domainname is None
    p = spec.process
    assert p.args == ("sh",) and p.cwd == "/" and p.terminal is True
    assert p.user == model.User(uid=0, gid=0)
    assert p.env == ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm")
    caps = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert p.capabilities == model.Capabilities(bounding=caps, effective=caps, permitted=caps)
    assert p.rlimits == (model.Rlimit("RLIMIT_NOFILE", 1024, 1024),)
    assert p.no_new_privileges is True and p.oom_score_adj is None
    assert [m.destination for m in spec.mounts] == ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys",
                                                    "/sys/fs/cgroup"]
    assert spec.mounts[1] == model.Mount(destination="/dev", type="tmpfs", source="tmpfs",
                                         options=("nosuid", "strictatime", "mode=755", "size=65536k"))
    assert spec.linux.namespaces == tuple(model.Namespace(t) for t in
                                          ("pid", "network", "ipc", "uts", "mount", "cgroup"))
    assert spec.linux.uid_mappings == () and spec.linux.gid_mappings == ()
    assert spec.linux.resources == {"devices": [{"allow": False, "access": "rwm"}]}
    assert "/proc/kcore" in spec.linux.masked_paths and "/proc/sys" in spec.linux.readonly_paths
    assert spec.hooks == model.Hooks() and spec.annotations == {}


def test_default_rootless_spec_model():
    spec = parse_config(json.dumps(default_spec(rootless=True)), BUNDLE)
    assert model.Namespace("user") in spec.linux.namespaces
    assert model.Namespace("network") not in spec.linux.namespaces
    assert spec.linux.uid_mappings == (model.IdMapping(0, os.geteuid(), 1),)
    assert spec.linux.gid_mappings == (model.IdMapping(0, os.getegid(), 1),)
    assert spec.linux.resources is None
    sys_mount = next(m for m in spec.mounts if m.destination == "/sys")
    assert sys_mount.type == "none" and "rbind" in sys_mount.options and sys_mount.source == "/sys"


MAXIMAL = {
    "ociVersion": "1.3.0",
    "root": {"path": "/srv/rootfs/", "readonly": False},
    "hostname": "box",
    "domainname": "example.org",
    "annotations": {"org.example.key": "value", "empty": ""},
    "mounts": [
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro"]},
        {"destination": "run", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"],
         "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
         "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]},
        {"destination": "/opt", "source": "/opt", "options": ["bind"]},
    ],
    "process": {
        "terminal": True,
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [5, 6], "username": "u"},
        "args": ["/bin/sh", "-c", "true"],
        "env": ["PATH=/bin", "EMPTY="],
        "cwd": "/home",
        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"], "effective": ["CAP_KILL"],
                         "inheritable": [], "permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20},
                    {"type": "RLIMIT_CORE", "soft": 0, "hard": 18446744073709551615}],
        "noNewPrivileges": True,
        "oomScoreAdj": -1000,
        "apparmorProfile": "unconfined",
        "selinuxLabel": "system_u:system_r:container_t:s0",
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 0, "flags": ["SCHED_FLAG_RECLAIM"],
                      "runtime": 10, "deadline": 20, "period": 30},
        "execCPUAffinity": {"initial": "0", "final": "0-1, 3"},
    },
    "hooks": {
        "prestart": [{"path": "/bin/a"}],
        "createRuntime": [{"path": "/bin/b", "args": ["b", "1"], "env": ["X=1"], "timeout": 5}],
        "createContainer": [{"path": "/bin/c"}],
        "startContainer": [{"path": "/bin/d"}],
        "poststart": [{"path": "/bin/e"}],
        "poststop": [{"path": "/bin/f"}, {"path": "/bin/g"}],
    },
    "linux": {
        "namespaces": [{"type": t} for t in ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "timeOffsets": {"monotonic": {"secs": -5, "nanosecs": 0}, "boottime": {"secs": 86400}},
        "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o666,
                     "uid": 0, "gid": 0},
                    {"type": "p", "path": "/dev/fifo"}],
        "cgroupsPath": "/runsc-py/box",
        "resources": {
            "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 10, "minor": 229,
                                                            "access": "rw"}],
            "memory": {"limit": 1 << 30, "reservation": 1 << 29, "swap": -1, "swappiness": 10,
                       "disableOOMKiller": False, "useHierarchy": True, "checkBeforeUpdate": True},
            "cpu": {"shares": 1024, "quota": 50000, "burst": 1000, "period": 100000, "realtimeRuntime": 0,
                    "realtimePeriod": 0, "cpus": "0-1", "mems": "0", "idle": 0},
            "pids": {"limit": 64},
            "blockIO": {"weight": 500, "leafWeight": 300,
                        "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}]},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
            "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500}]},
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
            "unified": {"memory.high": "max"},
        },
        "rootfsPropagation": "rslave",
        "seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock", "listenerMetadata": "meta",
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"},
                          {"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["mknod"], "action": "SCMP_ACT_NOTIFY"},
                {"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            ],
        },
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "system_u:object_r:container_file_t:s0",
        "personality": {"domain": "LINUX32", "flags": []},
        "intelRdt": {"closID": "guaranteed"},
    },
}


def test_maximal_config_model():
    spec = parse_config(json.dumps(MAXIMAL), BUNDLE)
    assert spec.oci_version == "1.3.0"
    assert spec.root == model.Root(path="/srv/rootfs", readonly=False)
    assert (spec.hostname, spec.domainname) == ("box", "example.org")
    assert spec.annotations == {"org.example.key": "value", "empty": ""}
    assert spec.mounts == (
        model.Mount("/data", "bind", "/srv/data", ("rbind", "ro")),
        model.Mount("run", "tmpfs", "tmpfs", ("size=1m",), uid_mappings=(model.IdMapping(0, 100000, 65536),),
                    gid_mappings=(model.IdMapping(0, 100000, 65536),)),
        model.Mount("/opt", None, "/opt", ("bind",)),
    )
    p = spec.process
    assert p.terminal and p.console_size == (24, 80)
    assert p.user == model.User(uid=1000, gid=1000, umask=0o22, additional_gids=(5, 6))
    assert p.args == ("/bin/sh", "-c", "true") and p.env == ("PATH=/bin", "EMPTY=") and p.cwd == "/home"
    assert p.capabilities == model.Capabilities(bounding=("CAP_CHOWN", "CAP_KILL"), effective=("CAP_KILL",),
                                                inheritable=(), permitted=("CAP_KILL",), ambient=("CAP_KILL",))
    assert p.rlimits == (model.Rlimit("RLIMIT_NOFILE", 10, 20), model.Rlimit("RLIMIT_CORE", 0, (1 << 64) - 1))
    assert p.no_new_privileges and p.oom_score_adj == -1000
    assert p.apparmor_profile == "unconfined" and p.selinux_label == "system_u:system_r:container_t:s0"
    assert p.io_priority == {"class": "IOPRIO_CLASS_BE", "priority": 4}
    assert p.scheduler["policy"] == "SCHED_DEADLINE" and p.exec_cpu_affinity["final"] == "0-1, 3"
    h = spec.hooks
    assert h.prestart == (model.Hook("/bin/a"),)
    assert h.create_runtime == (model.Hook("/bin/b", ("b", "1"), ("X=1",), 5),)
    assert [x.path for x in (h.create_container + h.start_container + h.poststart + h.poststop)] == [
        "/bin/c", "/bin/d", "/bin/e", "/bin/f", "/bin/g"]
    lx = spec.linux
    assert [n.type for n in lx.namespaces] == ["pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time"]
    assert lx.uid_mappings == lx.gid_mappings == (model.IdMapping(0, 100000, 65536),)
    assert lx.time_offsets["monotonic"] == {"secs": -5, "nanosecs": 0}
    assert lx.devices == (model.Device("/dev/fuse", "c", 10, 229, 0o666, 0, 0), model.Device("/dev/fifo", "p"))
    assert lx.cgroups_path == "/runsc-py/box"
    assert lx.resources == MAXIMAL["linux"]["resources"]
    assert lx.rootfs_propagation == "rslave"
    assert lx.seccomp == MAXIMAL["linux"]["seccomp"]
    assert lx.sysctl == {"net.ipv4.ip_forward": "1"}
    assert lx.masked_paths == ("/proc/kcore",) and lx.readonly_paths == ("/proc/sys",)
    assert lx.mount_label == "system_u:object_r:container_file_t:s0"
    assert lx.personality == {"domain": "LINUX32", "flags": []}
    assert lx.intel_rdt == {"closID": "guaranteed"}


def test_root_path_is_relative_to_the_bundle():
    doc = default_spec()
    for given, resolved in (("rootfs", "/bundle/rootfs"), ("./a/../rootfs", "/bundle/rootfs"),
                            ("../shared/rootfs", "/shared/rootfs"), ("/abs/rootfs", "/abs/rootfs"),
                            (".", "/bundle")):
        doc["root"]["path"] = given
        assert parse_config(json.dumps(doc), BUNDLE).root.path == resolved


def test_minimal_config():
    """Only ociVersion and root are required; process is optional in config.json."""
    spec = parse_config('{"ociVersion": "1.0.0", "root": {"path": "rootfs"}}', BUNDLE)
    assert spec.process is None and spec.mounts == () and spec.linux == model.Linux()


def test_zero_block_io_weights_mean_unset():
    """Docker 20.10 writes blockIO.weight 0 (and cpu.shares 0) into every
    config.json for "not set"; runc skips a 0 weight, and so must this."""
    doc = default_spec()
    doc["linux"]["resources"] = {"memory": {"disableOOMKiller": False}, "cpu": {"shares": 0},
                                 "blockIO": {"weight": 0, "leafWeight": 0,
                                             "weightDevice": [{"major": 8, "minor": 0, "weight": 0}]}}
    spec = parse_config(json.dumps(doc), BUNDLE)
    assert spec.linux.resources["blockIO"]["weight"] == 0


def test_unknown_fields_are_kept_not_refused():
    doc = default_spec()
    doc["org.example.top"] = {"nested": [1, 2, {"deep": True}]}
    doc["process"]["org.example.proc"] = "p"
    doc["process"]["user"]["org.example.user"] = 1
    doc["linux"]["org.example.linux"] = ["l"]
    doc["mounts"][0]["org.example.mount"] = 1.5
    doc["hooks"] = {"org.example.kind": [{"path": "relative is fine here: ignored"}], "prestart": []}
    doc["linux"]["namespaces"][0]["org.example.ns"] = None
    doc["windows"] = {"layerFolders": ["C:\\x"]}
    spec = parse_config(json.dumps(doc), BUNDLE)
    assert spec.raw["org.example.top"] == {"nested": [1, 2, {"deep": True}]}
    assert spec.raw["windows"] == {"layerFolders": ["C:\\x"]}
    assert spec.process.raw["org.example.proc"] == "p"
    assert spec.process.raw["user"]["org.example.user"] == 1
    assert spec.linux.raw["org.example.linux"] == ["l"]
    assert spec.raw["mounts"][0]["org.example.mount"] == 1.5
    assert spec.raw["hooks"]["org.example.kind"][0]["path"] == "relative is fine here: ignored"
    assert json.loads(json.dumps(spec.raw)) == doc


def test_parse_process():
    process = parse_process(json.dumps({"args": ["ls"], "cwd": "/", "user": {"uid": 5, "gid": 6},
                                        "env": ["A=1"], "org.example": 1}))
    assert process.args == ("ls",) and process.user == model.User(5, 6) and process.env == ("A=1",)
    assert process.raw["org.example"] == 1
    with pytest.raises(ConfigError) as info:
        parse_process(json.dumps({"args": [], "cwd": "x"}))
    assert str(info.value) == ("process.json: process.args: must have at least one entry; "
                               "process.json: process.cwd: 'x' must be an absolute path")
    with pytest.raises(ConfigError) as info:
        parse_process("[1]", source="exec")
    assert str(info.value) == "exec: the document must be a JSON object, not an array"


# -- load_bundle: the bundle on disk ---------------------------------------------------------

def write_bundle(path, doc=None, rootfs=True):
    os.makedirs(path, exist_ok=True)
    if rootfs:
        os.makedirs(os.path.join(path, "rootfs"), exist_ok=True)
    if doc is not False:
        with open(os.path.join(path, "config.json"), "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc or default_spec()))
    return str(path)


def bundle_error(bundle):
    with pytest.raises(ConfigError) as info:
        load_bundle(bundle)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_load_bundle(tmp_path):
    bundle = write_bundle(tmp_path / "b")
    spec = load_bundle(bundle)
    assert spec.root.path == f"{bundle}/rootfs"


def test_bundle_missing(tmp_path):
    assert bundle_error(f"{tmp_path}/nope") == f"bundle {tmp_path}/nope does not exist"


def test_bundle_is_a_file(tmp_path):
    (tmp_path / "file").write_text("{}")
    assert bundle_error(f"{tmp_path}/file") == f"bundle {tmp_path}/file is not a directory"


def test_bundle_below_a_file(tmp_path):
    (tmp_path / "file").write_text("{}")
    assert bundle_error(f"{tmp_path}/file/b") == f"bundle {tmp_path}/file/b is not accessible: not a directory"


def test_config_missing(tmp_path):
    bundle = write_bundle(tmp_path / "b", doc=False)
    assert bundle_error(bundle) == f"{bundle}/config.json: no such file or directory"


def test_config_is_a_directory(tmp_path):
    bundle = write_bundle(tmp_path / "b", doc=False)
    os.mkdir(f"{bundle}/config.json")
    assert bundle_error(bundle) == f"{bundle}/config.json: not a regular file"


def test_config_fifo_does_not_hang(tmp_path):
    bundle = write_bundle(tmp_path / "b", doc=False)
    os.mkfifo(f"{bundle}/config.json")
    assert bundle_error(bundle) == f"{bundle}/config.json: not a regular file"


def test_config_unreadable(tmp_path):
    if os.geteuid() != 0:
        bundle = write_bundle(tmp_path / "b")
        os.chmod(f"{bundle}/config.json", 0)
        assert bundle_error(bundle) == f"{bundle}/config.json: permission denied"
        return
    # Root reads anything: check as nobody, in a child that drops to it, on
    # a bundle whose every parent nobody can search.
    top = tempfile.mkdtemp(prefix="runsc-py-test-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        bundle = write_bundle(f"{top}/b")
        os.chmod(f"{bundle}/config.json", 0)
        assert _as_nobody(lambda: _error_text(load_bundle, bundle)) == f"{bundle}/config.json: permission denied"
    finally:
        shutil.rmtree(top)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_bundle_not_searchable(tmp_path):
    """EACCES on the bundle is not "does not exist"."""
    bundle = write_bundle(tmp_path / "private" / "b")
    os.chmod(tmp_path / "private", 0o700)
    assert (_as_nobody(lambda: _error_text(load_bundle, bundle))
            == f"bundle {bundle} is not accessible: permission denied")


def _error_text(function, *args):
    try:
        function(*args)
    except ConfigError as e:
        return str(e)
    return "no error"


def _as_nobody(function):
    """function()'s text result, computed in a child running as nobody."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, function().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        text = f.read().decode()
    os.waitpid(pid, 0)
    return text


def test_config_too_large_on_disk(tmp_path):
    bundle = write_bundle(tmp_path / "b", doc=json.dumps(default_spec()) + " " * MAX_CONFIG)
    assert bundle_error(bundle) == "config.json: is larger than 8 MiB"


def test_root_path_missing(tmp_path):
    bundle = write_bundle(tmp_path / "b", rootfs=False)
    assert bundle_error(bundle) == f"config.json: root.path: {bundle}/rootfs does not exist"


def test_root_path_not_a_directory(tmp_path):
    bundle = write_bundle(tmp_path / "b", rootfs=False)
    (tmp_path / "b" / "rootfs").write_text("")
    assert bundle_error(bundle) == f"config.json: root.path: {bundle}/rootfs is not a directory"


def test_root_path_dangling_symlink(tmp_path):
    bundle = write_bundle(tmp_path / "b", rootfs=False)
    os.symlink("/nonexistent-root", f"{bundle}/rootfs")
    assert bundle_error(bundle) == f"config.json: root.path: {bundle}/rootfs does not exist"


def test_malformed_config_on_disk_names_the_field(tmp_path):
    doc = default_spec()
    del doc["mounts"][1]["destination"]
    bundle = write_bundle(tmp_path / "b", doc=doc)
    assert bundle_error(bundle) == "config.json: mounts[1].destination: is required"


# -- the CLI: one line, exit 1, nothing left in --root --------------------------------------

def runtime(*args, root):
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd()}
    return subprocess.run(RUNTIME + ["--root", str(root), *args], capture_output=True, text=True, timeout=30,
                          env=env)


BAD_BUNDLES = [
    ("mount-destination", delp("mounts[1].destination"), "config.json: mounts[1].destination: is required"),
    ("uid-bool", setp("process.user.uid", True), "config.json: process.user.uid: must be an integer, not a boolean"),
    ("args-empty", setp("process.args", []), "config.json: process.args: must have at least one entry"),
    ("ociVersion", setp("ociVersion", "2.0.0"),
     "config.json: ociVersion: '2.0.0' is not a 1.x version of the runtime spec"),
    ("namespace-duplicate", addp("linux.namespaces", {"type": "mount"}),
     "config.json: linux.namespaces[6].type: namespace 'mount' is also given by linux.namespaces[4]"),
    ("two-problems", both(setp("process.cwd", "x"), setp("hooks", {"prestart": [{"path": "y"}]})),
     "config.json: process.cwd: 'x' must be an absolute path; "
     "config.json: hooks.prestart[0].path: 'y' must be an absolute path"),
]


@pytest.mark.parametrize("command", [["create"], ["run", "--detach"]], ids=["create", "run"])
@pytest.mark.parametrize("edit,expected", [c[1:] for c in BAD_BUNDLES], ids=[c[0] for c in BAD_BUNDLES])
def test_cli_refuses_malformed_config_in_one_line(tmp_path, command, edit, expected):
    bundle = write_bundle(tmp_path / "bundle", doc=edited(edit))
    root = tmp_path / "root"
    result = runtime(*command, "--bundle", bundle, "c1", root=root)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"runsc-py: {expected}"]
    assert result.stdout == ""
    assert not root.exists() or os.listdir(root) == []


@pytest.mark.parametrize("case", ["invalid-json", "not-object", "deep", "no-rootfs", "no-config", "fifo"])
def test_cli_refuses_broken_bundle_in_one_line(tmp_path, case):
    bundle = str(tmp_path / "bundle")
    expected = {
        "invalid-json": "config.json: invalid JSON: Expecting ':' delimiter: line 1 column 29 (char 28)",
        "not-object": "config.json: the document must be a JSON object, not an array",
        "deep": f"config.json: is nested more than {MAX_DEPTH} levels deep",
        "no-rootfs": f"config.json: root.path: {bundle}/rootfs does not exist",
        "no-config": f"{bundle}/config.json: no such file or directory",
        "fifo": f"{bundle}/config.json: not a regular file",
    }[case]
    text = {"invalid-json": '{"ociVersion": "1.0.0", "a" "b"}', "not-object": "[]",
            "deep": '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"}.get(case)
    write_bundle(bundle, doc=text if text else (False if case in ("no-config", "fifo") else None),
                 rootfs=case != "no-rootfs")
    if case == "fifo":
        os.mkfifo(f"{bundle}/config.json")
    root = tmp_path / "root"
    result = runtime("create", "--bundle", bundle, "c1", root=root)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"runsc-py: {expected}"]
    assert not root.exists() or os.listdir(root) == []


def test_exec_process_file_malformed(tmp_path):
    """`exec --process FILE` validates FILE as a process (no container is read first)."""
    from runsc_py.cli.exec_process import build_process
    from runsc_py.errors import Failure
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["sh"], "cwd": "/", "user": {"uid": "0", "gid": 0}}))
    with pytest.raises(Failure) as info:
        build_process(None, str(path), (), False, {})
    assert str(info.value) == "process.json: process.user.uid: must be an integer, not a string"
