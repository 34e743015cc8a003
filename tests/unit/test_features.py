"""`runsc-py features`: valid against the runtime-spec features schema
(features-schema.json, features-linux.json, defs-linux.json: checks
written out by hand here), and honest: what it lists is what the code
accepts and applies."""

import json
import os
import re
import subprocess
import sys

import pytest

RUNTIME = [sys.executable, "-m", "runsc_py"]

# runtime-spec schema/defs.json "ociVersion" is SemVer 2.0.0.
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")
# schema/defs-linux.json enums (runtime-spec 1.2), features-linux.json patterns.
NAMESPACE_TYPE = {"mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time"}
SECCOMP_ACTION = {"SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
                  "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"}
SECCOMP_OPERATORS = {"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                     "SCMP_CMP_MASKED_EQ"}
SECCOMP_ARCH = {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
                "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
                "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
                "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
                "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64"}
SECCOMP_FLAG = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"}
CAPABILITY = re.compile(r"CAP_[A-Z_]+")


# -- a hand-written validator of the schema -------------------------------------------------

def schema_problems(doc):
    """Every way `doc` breaks the features schema, as "path: what"."""
    out = []

    def bad(path, what):
        out.append(f"{path}: {what}")

    def is_type(value, kind):
        if kind == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, {"object": dict, "array": list, "string": str, "boolean": bool}[kind])

    def typed(obj, key, path, kind):
        """obj[key] if present and of `kind`; None otherwise."""
        if key not in obj:
            return None
        if not is_type(obj[key], kind):
            bad(f"{path}{key}", f"must be {kind}")
            return None
        return obj[key]

    def strings(obj, key, path, check=None, what=""):
        items = typed(obj, key, path, "array")
        for i, item in enumerate(items or ()):
            if not isinstance(item, str):
                bad(f"{path}{key}[{i}]", "must be string")
            elif check is not None and not check(item):
                bad(f"{path}{key}[{i}]", f"{item!r} is not {what}")

    def booleans(obj, key, path, names):
        section = typed(obj, key, path, "object")
        for name in names:
            if section is not None:
                typed(section, name, f"{path}{key}.", "boolean")
        return section

    if not isinstance(doc, dict):
        return ["features: must be object"]
    for key in ("ociVersionMin", "ociVersionMax"):
        if key not in doc:
            bad(key, "is required")
        elif not isinstance(doc[key], str) or not SEMVER.fullmatch(doc[key]):
            bad(key, "must be a SemVer string")
    strings(doc, "hooks", "")
    strings(doc, "mountOptions", "")
    strings(doc, "potentiallyUnsafeConfigAnnotations", "")
    annotations = typed(doc, "annotations", "", "object")
    for k, v in (annotations or {}).items():
        if not isinstance(v, str):
            bad(f"annotations.{k}", "must be string")
    linux = typed(doc, "linux", "", "object")
    if linux is None:
        return out
    strings(linux, "namespaces", "linux.", NAMESPACE_TYPE.__contains__, "a NamespaceType")
    strings(linux, "capabilities", "linux.", CAPABILITY.fullmatch, "^CAP_[A-Z_]+$")
    booleans(linux, "cgroup", "linux.", ("v1", "v2", "systemd", "systemdUser", "rdma"))
    seccomp = booleans(linux, "seccomp", "linux.", ("enabled",))
    if seccomp is not None:
        strings(seccomp, "actions", "linux.seccomp.", SECCOMP_ACTION.__contains__, "a SeccompAction")
        strings(seccomp, "operators", "linux.seccomp.", SECCOMP_OPERATORS.__contains__, "a SeccompOperators")
        strings(seccomp, "archs", "linux.seccomp.", SECCOMP_ARCH.__contains__, "a SeccompArch")
        strings(seccomp, "knownFlags", "linux.seccomp.", SECCOMP_FLAG.__contains__, "a SeccompFlag")
        strings(seccomp, "supportedFlags", "linux.seccomp.", SECCOMP_FLAG.__contains__, "a SeccompFlag")
    for key in ("apparmor", "selinux", "intelRdt"):
        booleans(linux, key, "linux.", ("enabled",))
    extensions = typed(linux, "mountExtensions", "linux.", "object")
    if extensions is not None:
        booleans(extensions, "idmap", "linux.mountExtensions.", ("enabled",))
    return out


def test_the_schema_check_catches_violations():
    """The checker itself can fail: a document breaking each rule."""
    broken = {
        "ociVersionMax": "1.2",
        "hooks": ["prestart", 1],
        "mountOptions": "ro",
        "annotations": {"a": 1},
        "potentiallyUnsafeConfigAnnotations": [None],
        "linux": {
            "namespaces": ["pid", "net"],
            "capabilities": ["CAP_KILL", "cap_chown", "KILL"],
            "cgroup": {"v1": "yes", "v2": True, "systemd": 0},
            "seccomp": {"enabled": 1, "actions": ["SCMP_ACT_MAYBE"], "operators": ["EQ"],
                        "archs": ["SCMP_ARCH_Z80"], "knownFlags": ["FLAG"], "supportedFlags": [3]},
            "apparmor": {"enabled": None},
            "selinux": [],
            "intelRdt": {"enabled": "false"},
            "mountExtensions": {"idmap": {"enabled": 1}},
        },
    }
    assert schema_problems(broken) == [
        "ociVersionMin: is required",
        "ociVersionMax: must be a SemVer string",
        "hooks[1]: must be string",
        "mountOptions: must be array",
        "potentiallyUnsafeConfigAnnotations[0]: must be string",
        "annotations.a: must be string",
        "linux.namespaces[1]: 'net' is not a NamespaceType",
        "linux.capabilities[1]: 'cap_chown' is not ^CAP_[A-Z_]+$",
        "linux.capabilities[2]: 'KILL' is not ^CAP_[A-Z_]+$",
        "linux.cgroup.v1: must be boolean",
        "linux.cgroup.systemd: must be boolean",
        "linux.seccomp.enabled: must be boolean",
        "linux.seccomp.actions[0]: 'SCMP_ACT_MAYBE' is not a SeccompAction",
        "linux.seccomp.operators[0]: 'EQ' is not a SeccompOperators",
        "linux.seccomp.archs[0]: 'SCMP_ARCH_Z80' is not a SeccompArch",
        "linux.seccomp.knownFlags[0]: 'FLAG' is not a SeccompFlag",
        "linux.seccomp.supportedFlags[0]: must be string",
        "linux.apparmor.enabled: must be boolean",
        "linux.selinux: must be object",
        "linux.intelRdt.enabled: must be boolean",
        "linux.mountExtensions.idmap.enabled: must be boolean",
    ]
    assert schema_problems({"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0"}) == []


# -- the real document ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def features():
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.getcwd()}
    result = subprocess.run(RUNTIME + ["features"], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def test_features_matches_the_schema(features):
    assert schema_problems(features) == []


def test_features_lists_every_section(features):
    """Everything the schema can say is said (an absent section means "unknown")."""
    assert {"ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux", "annotations",
            "potentiallyUnsafeConfigAnnotations"} <= set(features)
    assert {"namespaces", "capabilities", "cgroup", "seccomp", "apparmor", "selinux", "intelRdt",
            "mountExtensions"} <= set(features["linux"])


def _version(text):
    return tuple(int(x) for x in text.split("-")[0].split("+")[0].split("."))


def test_version_range_is_what_validation_accepts(features):
    from specs.config import ConfigError, parse_config
    from specs.default import OCI_VERSION, default_spec
    low, high = features["ociVersionMin"], features["ociVersionMax"]
    assert _version(low) <= _version(OCI_VERSION) <= _version(high)
    assert features["annotations"]["org.opencontainers.runtime-spec.version"] == OCI_VERSION
    doc = default_spec()
    for accepted in (low, high):
        doc["ociVersion"] = accepted
        parse_config(json.dumps(doc), "/b")
    major = _version(high)[0]
    for refused in ("0.1.0", f"{major + 1}.0.0"):
        doc["ociVersion"] = refused
        with pytest.raises(ConfigError):
            parse_config(json.dumps(doc), "/b")


def test_every_mount_option_listed_is_understood(features):
    """Each listed option is taken by the mount-option parser as an option,
    not passed on as file system data and not refused."""
    from runsc_py.linux import mountopts
    for option in features["mountOptions"]:
        parsed = mountopts.parse([option], "tmpfs")
        assert parsed.data == [], option
    assert "idmap" not in features["mountOptions"] and "ridmap" not in features["mountOptions"]
    assert features["linux"]["mountExtensions"]["idmap"]["enabled"] is False


def test_every_hook_kind_listed_is_run(features):
    """The kinds listed are the ones validated (specs.config) and the ones the
    hook runner knows (tests/integration/test_hooks.py runs each one)."""
    from runsc_py import hooks
    from specs.config import HOOK_KINDS
    assert features["hooks"] == list(HOOK_KINDS)
    assert set(HOOK_KINDS) == set(hooks._KINDS)


def test_namespaces_and_capabilities_are_known_to_the_code(features):
    from runsc_py.linux import ns
    from specs.names import CAPABILITIES
    linux = features["linux"]
    assert len(set(linux["namespaces"])) == len(linux["namespaces"])
    for kind in linux["namespaces"]:
        assert kind in ns.TYPES, kind
    assert set(linux["capabilities"]) <= set(CAPABILITIES)
    assert {"CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_NET_RAW"} <= set(linux["capabilities"])


def test_seccomp_is_honest(features):
    from sandbox import seccomp
    section = features["linux"]["seccomp"]
    assert set(section["supportedFlags"]) <= set(section["knownFlags"])
    assert set(section["supportedFlags"]) <= set(seccomp.FLAG_ATTRS)
    if not section["enabled"]:
        return
    import pyseccomp
    for name in section["actions"]:
        seccomp.action(pyseccomp, name, None)  # raises KeyError for one it cannot build
    assert set(section["operators"]) <= set(seccomp._OPS)
    assert section["archs"] == seccomp.supported_arches()
    native = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(os.uname().machine)
    if native:
        assert native in section["archs"]


def test_lsm_flags_are_the_hosts(features):
    from sandbox import confine
    linux = features["linux"]
    assert linux["apparmor"]["enabled"] == confine.apparmor_enabled()
    assert linux["selinux"]["enabled"] == confine.selinux_enabled()


def test_features_state_what_the_runtimes_own_processes_keep():
    from sandbox import selfconfine
    from specs.features import features
    names = {5: "CAP_KILL"}
    annotations = features()["annotations"]
    kept = ",".join(names[c] for c in selfconfine.SANDBOX_CAPS)
    assert annotations["io.github.runsc-py.sandbox.capabilities"] == kept
    assert annotations["io.github.runsc-py.gofer.capabilities"] == ",".join(names[c] for c in selfconfine.GOFER_CAPS)
