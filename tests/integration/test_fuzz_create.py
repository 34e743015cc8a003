"""Property-based fuzzing of `runsc-py create` with generated config.json
documents (the strategies of tests/support/fuzz.py), one process per
example, as engines call it. For every document, within a timeout:
- exit 0 (a valid config: the container exists, and `delete --force`
  removes it), or
- exit 1 with exactly one stderr line starting with `runsc-py: `, no
  traceback, no internal error, and the root exactly as before (empty).
The leak check after each test finds any process or mount an example left.

`root` is pinned to the bundle's rootfs and `hooks` are not generated:
fuzzing the host path of the rootfs or hooks' programs would run or
expose arbitrary host files, which is what they are for, not a bug.

Examples per run (reproducible: derandomized): 230 + 30; with the 1,834 of
tests/unit/test_fuzz_config.py, over 2,000.
"""

import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import fuzz

INVALID_MOSTLY = st.one_of(
    fuzz.mutated_configs(keep=("root", "hooks")),
    fuzz.typed_configs(), fuzz.truncated_configs(), fuzz.nul_configs(),
    fuzz.deep_configs(), fuzz.junk, fuzz.huge_configs())


def pinned(data: bytes) -> bytes:
    """The document with its root at the bundle's rootfs and without hooks,
    if it is a JSON object at all; anything else is passed on unchanged."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data
    if not isinstance(doc, dict):
        return data
    doc["root"] = {"path": "rootfs", "readonly": False}
    doc.pop("hooks", None)
    return json.dumps(doc).encode()


def create_once(env, bundle, data):
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(data)
    cid = env.cid("fuzz")
    result = env.rt("create", "--bundle", bundle, cid, check=False, timeout=30)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    if result.returncode == 0:
        assert result.stderr == "", result.stderr
        deleted = env.rt("delete", "--force", cid, check=False, timeout=30)
        assert deleted.returncode == 0 and deleted.stderr == "", deleted.stderr
    else:
        assert result.returncode == 1, (result.returncode, result.stderr)
        lines = result.stderr.split("\n")
        assert len(lines) == 2 and lines[1] == "" and lines[0].startswith("runsc-py: "), result.stderr[:2000]
    assert os.listdir(env.root) == [], "the root changed"
    return result.returncode


def test_create_with_fuzzed_configs(env):
    bundle = env.bundle(["sh"])
    os.makedirs(env.root)
    outcomes = []

    @settings(max_examples=230, **fuzz.CI_SETTINGS)
    @given(INVALID_MOSTLY.map(pinned))
    def run(data):
        outcomes.append(create_once(env, bundle, data))

    run()
    # Both outcomes occur (here 21 created, 209 refused): neither path goes untested.
    assert outcomes.count(0) >= 5 and outcomes.count(1) >= 100, (outcomes.count(0), outcomes.count(1))


def test_create_with_valid_configs(env):
    bundle = env.bundle(["sh"])
    os.makedirs(env.root)
    outcomes = []

    @settings(max_examples=30, **fuzz.CI_SETTINGS)
    @given(fuzz.valid_configs())
    def run(data):
        outcomes.append(create_once(env, bundle, data))

    run()
    assert outcomes == [0] * len(outcomes) and len(outcomes) == 30
