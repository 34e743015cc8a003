"""Hypothesis strategies for config.json documents, shared by the in-process
fuzzing of `specs.config` and the fuzzing of `runsc-py create`.

Every strategy yields `bytes` (what a config.json file holds):
- `valid_configs`: the default spec with valid variations (they must parse);
- `mutated_configs`: the default spec with a value replaced by one of
  another type, a key removed or added, a value wrapped in a list;
- `truncated_configs`: a valid document cut short;
- `typed_configs`: a known field with a value of every wrong JSON type;
- `huge_configs`: huge strings and arrays, up to past the 8 MiB limit;
- `nul_configs`: NUL bytes in values and keys, lone surrogates, control
  characters in keys (which must not split the one-line error);
- `deep_configs`: nesting far deeper than any config has, up to past what
  a recursive parser survives;
- `junk`: arbitrary bytes.

`CI_SETTINGS` makes runs reproducible (derandomize: the examples come from
the test's name, no example database) and unbounded in time per example
(the tests bound hangs themselves).
"""

import copy
import json
import signal
from contextlib import contextmanager

from hypothesis import HealthCheck
from hypothesis import strategies as st

from specs.default import default_spec

CI_SETTINGS = dict(deadline=None, derandomize=True, database=None, print_blob=False,
                   suppress_health_check=list(HealthCheck))

BASE = default_spec()
BASE["process"]["terminal"] = False  # create needs no console socket then
BASE["root"]["readonly"] = False

scalars = (st.none() | st.booleans() | st.integers(min_value=-(1 << 70), max_value=1 << 70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)

# Text that a valid document may hold: any character but NUL (and the
# surrogates, which are not characters).
NO_NUL = st.characters(blacklist_characters="\0", blacklist_categories=("Cs",))
safe_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=1, max_size=16)


def dump(doc) -> bytes:
    return json.dumps(doc).encode()


def paths(doc, prefix=()):
    """Every (path to a container, key or index) in doc, for mutations."""
    out = []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        out.append(prefix + (key,))
        out.extend(paths(value, prefix + (key,)))
    return out


def at(doc, path):
    for key in path:
        doc = doc[key]
    return doc


FIELD_PATHS = paths(BASE)


# -- strategies ---------------------------------------------------------------------

@st.composite
def valid_configs(draw):
    doc = copy.deepcopy(BASE)
    doc["process"]["args"] = draw(st.lists(safe_text, min_size=1, max_size=3))
    doc["process"]["args"][0] = "sh"  # the busybox rootfs has it: create checks it is executable
    doc["process"]["env"] = [f"{k}={v}" for k, v in draw(st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,7}", fullmatch=True), safe_text, max_size=3)).items()]
    doc["process"]["cwd"] = draw(st.sampled_from(["/", "/tmp", "/made/by/cwd"]))
    doc["hostname"] = draw(st.from_regex(r"[a-z][a-z0-9-]{0,14}", fullmatch=True))
    doc["annotations"] = draw(st.dictionaries(safe_text, st.text(NO_NUL, max_size=20), max_size=3))
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
        doc["mounts"].append({"destination": f"/fuzz/{name}", "type": "tmpfs", "source": "tmpfs",
                              "options": draw(st.lists(st.sampled_from(["ro", "nosuid", "nodev", "noexec",
                                                                        "mode=755", "size=1m"]),
                                                       unique=True, max_size=3))})
    if draw(st.booleans()):
        doc["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": draw(st.integers(1, 1024))}]
    return dump(doc)


@st.composite
def mutated_doc(draw, keep=()):
    """The default spec with 1-3 mutations; paths under `keep` are left alone."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        candidates = [p for p in paths(doc) if not (p and p[0] in keep)]
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = at(doc, path[:-1])
        key = path[-1]
        op = draw(st.sampled_from(["replace", "delete", "add", "wrap", "null"]))
        if op == "replace":
            parent[key] = draw(json_values)
        elif op == "delete":
            del parent[key]
        elif op == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_values)
        elif op == "add":
            parent.insert(key, draw(json_values))
        elif op == "wrap":
            parent[key] = [parent[key]]
        else:
            parent[key] = None
    return doc


def mutated_configs(keep=()):
    return mutated_doc(keep).map(dump)


@st.composite
def truncated_configs(draw):
    data = draw(valid_configs())
    return data[:draw(st.integers(0, len(data) - 1))]


WRONG_TYPES = [None, True, 0, -1, 1.5, "", "x", [], [None], {}, {"a": 1}]


@st.composite
def typed_configs(draw):
    doc = copy.deepcopy(BASE)
    path = draw(st.sampled_from(FIELD_PATHS))
    at(doc, path[:-1])[path[-1]] = draw(st.sampled_from(WRONG_TYPES) | json_values)
    return dump(doc)


@st.composite
def huge_configs(draw):
    doc = copy.deepcopy(BASE)
    size = draw(st.sampled_from([1 << 10, 1 << 16, 1 << 20, 9 << 20]))
    where = draw(st.sampled_from(["hostname", "args", "env", "annotation", "mounts", "unknown"]))
    big = "x" * size
    if where == "hostname":
        doc["hostname"] = big
    elif where == "args":
        doc["process"]["args"] = ["sh", big]
    elif where == "env":
        doc["process"]["env"] = [f"A{i}=v" for i in range(size // 8)]
    elif where == "annotation":
        doc["annotations"] = {big[:size // 2]: big[:size // 2]}
    elif where == "mounts":
        doc["mounts"] = doc["mounts"] + [{"destination": f"/m{i}", "type": "tmpfs"} for i in range(size // 48)]
    else:
        doc["x-unknown"] = big
    return dump(doc)


NASTY = ["\0", "a\0b", "\ud800", "\udfff", "\n", "\r\n", "\x1b[31m", "\u2028", "\x7f", "../", "\\"]


@st.composite
def nul_configs(draw):
    doc = copy.deepcopy(BASE)
    nasty = draw(st.sampled_from(NASTY))
    target = draw(st.sampled_from(["value", "key", "annotation-key", "env", "arg", "mount-destination"]))
    if target == "value":
        strings = [p for p in FIELD_PATHS if isinstance(at(BASE, p), str)]
        path = draw(st.sampled_from(strings))
        at(doc, path[:-1])[path[-1]] = draw(st.sampled_from(["", "x"])) + nasty
    elif target == "key":
        doc["process"][nasty] = 1
    elif target == "annotation-key":
        doc["annotations"] = {nasty: "v", "ok": nasty}
    elif target == "env":
        doc["process"]["env"] = [f"A{nasty}=1", f"B=2{nasty}"]
    elif target == "arg":
        doc["process"]["args"] = ["sh", nasty]
    else:
        doc["mounts"].append({"destination": "/x" + nasty, "type": "tmpfs", "source": nasty})
    return dump(doc)  # ensure_ascii: surrogates travel as \\ud800 escapes, as an attacker writes them


@st.composite
def deep_configs(draw):
    depth = draw(st.sampled_from([63, 64, 65, 100, 1000, 10_000, 200_000]))
    kind = draw(st.sampled_from(["array", "object", "mixed"]))
    where = draw(st.sampled_from(["top", "annotation", "unknown", "process"]))
    opener, closer = {"array": ("[", "]"), "object": ('{"a":', "}"), "mixed": ('[{"a":', "}]")}[kind]
    nested = opener * depth + "1" + closer * depth
    if where == "top":
        return nested.encode()
    doc = copy.deepcopy(BASE)
    marker = "__DEEP__"
    if where == "annotation":
        doc["annotations"] = {"a": marker}
    elif where == "unknown":
        doc["x-deep"] = marker
    else:
        doc["process"]["user"] = marker
    return dump(doc).replace(json.dumps(marker).encode(), nested.encode())


junk = st.binary(max_size=256) | st.text(max_size=64).map(str.encode)

ALL = {"valid": valid_configs(), "mutated": mutated_configs(), "truncated": truncated_configs(),
       "typed": typed_configs(), "huge": huge_configs(), "nul": nul_configs(), "deep": deep_configs(),
       "junk": junk}


@contextmanager
def time_limit(seconds, what):
    """Fail (instead of hanging the suite) if the block takes longer."""
    def expired(_sig, _frame):
        raise AssertionError(f"{what} did not finish within {seconds}s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
