"""The `namespaces` control request (exec and ps of a rootless caller ask
the sandbox for its namespaces): only known /proc/self/ns names pass."""

import json

import pytest

from runsc_py import protocol


def parse(msg):
    return protocol.parse_request(json.dumps(msg).encode())


def test_known_names_pass():
    names = ["user", "mnt", "pid_for_children", "time_for_children", "pid"]
    assert parse({"op": "namespaces", "names": names})["names"] == names


@pytest.mark.parametrize("names, why", [
    (None, "field 'names' must be list"),
    ("pid", "field 'names' must be list"),
    (["pid", "../../../etc/passwd"], "not '../../../etc/passwd'"),
    ([7], "not 7"),
    (["ns/pid"], "not 'ns/pid'"),
])
def test_other_names_are_refused(names, why):
    with pytest.raises(protocol.BadRequest, match=why.replace("(", r"\(")):
        parse({"op": "namespaces", "names": names})
