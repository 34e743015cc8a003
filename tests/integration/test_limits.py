"""Large annotations either work through start or are refused at create,
with one line, never after a successful create (specs/config.py, "Size
limits")."""

import json
import os

import pytest

from specs.config import MAX_ANNOTATIONS, MAX_MESSAGE, STATE_FIXED_MAX
from tests.support.busybox import read_config, write_config
from tests.support.runtime import assert_one_line_error


def with_annotations(bundle, size, hooks=None):
    """Annotations of `size` bytes as JSON (several keys, as engines write)."""
    entry = len('"io.example.k00000":"",')
    annotations = {f"io.example.k{n:05d}": "v" * (4096 - entry) for n in range(size // 4096 - 1)}
    used = len(json.dumps(annotations, separators=(",", ":")))
    annotations["io.example.rest"] = "r" * (size - used - len(',"io.example.rest":""'))
    assert len(json.dumps(annotations, separators=(",", ":"))) == size
    config = read_config(bundle)
    config["annotations"] = annotations
    if hooks:
        config["hooks"] = hooks
    write_config(bundle, config)
    return annotations


def stdin_size_hook(out, kind):
    target = "/out" if kind == "startContainer" else out
    return {"path": "/bin/sh", "args": ["sh", "-c", f"cat > {target}/{kind}"]}


@pytest.mark.parametrize("size", [300 << 10, MAX_ANNOTATIONS - 1024])
def test_large_annotations_without_sandbox_hooks_work_through_start(env, size):
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["sleep", "1000"])
    annotations = with_annotations(bundle, size, hooks={"poststart": [stdin_size_hook(out, "poststart")]})
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    state = rt.state(cid)
    assert state["status"] == "running" and state["annotations"] == annotations
    assert json.load(open(os.path.join(out, "poststart")))["annotations"] == annotations
    rt("exec", cid, "true")
    rt("kill", cid, "KILL")
    rt("delete", "--force", cid)


@pytest.mark.parametrize("kind", ["createContainer", "startContainer"])
def test_annotations_in_budget_reach_the_sandbox_hooks(env, kind):
    rt, cid = env.rt, env.cid()
    out = os.path.join(env.tmp, "out")
    os.makedirs(out)
    bundle = env.bundle(["sleep", "1000"])
    config = read_config(bundle)
    config["mounts"].append({"destination": "/out", "type": "bind", "source": out, "options": ["rbind", "rw"]})
    write_config(bundle, config)
    annotations = with_annotations(bundle, MAX_MESSAGE - STATE_FIXED_MAX - 64,
                                   hooks={kind: [stdin_size_hook(out, kind)]})
    rt("create", "--bundle", bundle, cid)
    rt("start", cid)
    assert rt.status(cid) == "running"
    assert json.load(open(os.path.join(out, kind)))["annotations"] == annotations
    rt("delete", "--force", cid)


@pytest.mark.parametrize("size, hooks, needle", [
    (MAX_MESSAGE - STATE_FIXED_MAX + 4096, {"startContainer": [{"path": "/bin/true"}]},
     "with startContainer hooks the container's state goes to its sandbox in one socket message"),
    (MAX_MESSAGE - STATE_FIXED_MAX + 4096, {"createContainer": [{"path": "/bin/true"}]},
     "with createContainer hooks"),
    (MAX_ANNOTATIONS + 4096, None, "more than the 1 MiB the container's state record holds"),
])
def test_annotations_over_a_limit_are_refused_at_create(env, size, hooks, needle):
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["sleep", "1000"])
    with_annotations(bundle, size, hooks)
    result = rt("create", "--bundle", bundle, cid, check=False)
    assert_one_line_error(result, "config.json: annotations: are ")
    assert needle in result.stderr
    assert not os.path.isdir(env.root) or os.listdir(env.root) == []  # nothing was created


def test_a_config_whose_snapshot_would_exceed_the_limit_is_refused_at_create(env):
    """Under 8 MiB as a file (UTF-8), over it as the runtime writes it
    (\\u escapes): refused at create, not written unreadable."""
    rt, cid = env.rt, env.cid()
    bundle = env.bundle(["true"])
    config = read_config(bundle)
    config["io.example.padding"] = "\u00e9" * (3 << 20)  # 6 MiB as UTF-8, 18 MiB escaped
    with open(os.path.join(bundle, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False)
    result = rt("create", "--bundle", bundle, cid, check=False)
    assert_one_line_error(result, "config.json: is larger than 8 MiB once written as the runtime's snapshot")
