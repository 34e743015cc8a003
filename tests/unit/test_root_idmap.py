"""Which way runsc_py.idmap writes a user namespace's maps (the kernel's
side is tested by tests/e2e/rootless as an unprivileged user)."""

import pytest

from runsc_py import idmap
from runsc_py.errors import Failure
from specs.model import IdMapping


class Linux:
    def __init__(self, uids, gids):
        self.uid_mappings = tuple(IdMapping(container_id=c, host_id=h, size=s) for c, h, s in uids)
        self.gid_mappings = tuple(IdMapping(container_id=c, host_id=h, size=s) for c, h, s in gids)


@pytest.fixture
def calls(monkeypatch):
    seen = []
    monkeypatch.setattr(idmap, "_write_proc", lambda pid, name, text: seen.append(("write", name, text)))
    monkeypatch.setattr(idmap, "_helper", lambda tool, field, pid, maps: seen.append(("helper", tool, len(maps))))
    return seen


def test_root_writes_every_range_itself(monkeypatch, calls):
    monkeypatch.setattr(idmap.os, "geteuid", lambda: 0)
    idmap.write_id_maps(7, Linux([(0, 1000, 1), (1, 100000, 65536)], [(0, 1000, 1)]))
    assert calls == [("write", "uid_map", "0 1000 1\n1 100000 65536\n"), ("write", "gid_map", "0 1000 1\n")]


def test_unprivileged_self_map_denies_setgroups_before_gid_map(monkeypatch, calls):
    monkeypatch.setattr(idmap.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(idmap.os, "getegid", lambda: 1001)
    idmap.write_id_maps(7, Linux([(0, 1000, 1)], [(0, 1001, 1)]))
    assert calls == [("write", "uid_map", "0 1000 1\n"), ("write", "setgroups", "deny\n"),
                     ("write", "gid_map", "0 1001 1\n")]


@pytest.mark.parametrize("uids, gids", [
    ([(0, 1000, 1), (1, 100000, 65536)], [(0, 1001, 1)]),   # more than one range
    ([(0, 1000, 2)], [(0, 1001, 1)]),                        # more than the own id
    ([(0, 1000, 1)], [(0, 5, 1)]),                           # a gid not the caller's
])
def test_unprivileged_ranges_go_through_the_helpers(monkeypatch, calls, uids, gids):
    monkeypatch.setattr(idmap.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(idmap.os, "getegid", lambda: 1001)
    idmap.write_id_maps(7, Linux(uids, gids))
    assert [c[:2] for c in calls] == [("helper", "newuidmap"), ("helper", "newgidmap")]


def test_missing_helper_is_named(monkeypatch):
    monkeypatch.setattr(idmap.shutil, "which", lambda tool: None)
    monkeypatch.setattr(idmap.os, "access", lambda path, mode: False)
    with pytest.raises(Failure, match=r"linux.uidMappings: .* needs newuidmap \(package uidmap\), which is not installed"):
        idmap._helper("newuidmap", "linux.uidMappings", 7, ())
