"""Container operations on the host side, one module per verb (create,
start, kill, destroy, wait, ...) over the StateFile. This module holds what
they share: loading a container and deciding whether it still lives."""

from .. import status as st
from ..errors import Failure
from ..linux.proc import is_alive
from ..state_file import StateFile


class Container:
    """A container's StateFile and record, with its status brought up to
    date: a container whose sandbox died is `stopped`."""

    def __init__(self, sf: StateFile, record: dict):
        self.sf = sf
        self.record = record
        self.refresh()

    @property
    def cid(self):
        return self.sf.cid

    @property
    def status(self):
        return self.record["status"]

    @property
    def sandbox(self):
        return self.record.get("sandbox") or {}

    @property
    def gofer(self):
        return self.record.get("gofer") or {}

    def sandbox_alive(self):
        sb = self.sandbox
        return is_alive(sb.get("pid"), sb.get("startTime"))

    def refresh(self):
        if self.status in st.LIVE and self.status != st.CREATING and not self.sandbox_alive():
            self.record["status"] = st.STOPPED
            self.stale = True
        else:
            self.stale = False

    def persist_if_stale(self):
        """Write a status found out by liveness (lock held). Best effort: the
        status follows from liveness anyway, so a root that cannot be written
        (read-only, full) loses only this cache, and the caller still says
        what engines match ("container not running")."""
        if self.stale:
            try:
                self.sf.save_locked(self.record)
            except Failure:
                return
            self.stale = False

    def set_status(self, new):
        st.check_transition(self.status, new)
        self.record["status"] = new

    def pid(self):
        """The state's pid: the sandbox's while it lives, else 0 (never -1)."""
        if self.status == st.STOPPED:
            return 0
        return self.sandbox.get("pid") or 0

    def oci_state(self):
        from specs.state import oci_state
        r = self.record
        return oci_state(self.cid, self.status, self.pid(), r["bundle"], r.get("annotations"),
                         oci_version=r.get("ociVersion"), rootfs=r.get("rootfs", ""),
                         created=r.get("createdAt", ""), owner=r.get("owner", ""))


def load(root, cid) -> Container:
    """A container read without locking (for state, list, ps)."""
    sf = StateFile.find(root, cid)
    return Container(sf, sf.load())


def load_locked(root, cid) -> Container:
    """A container with its lock held; the record is read after the lock is
    taken, so decisions use the current state (gVisor PR #14533)."""
    sf = StateFile.find(root, cid)
    sf.lock()
    try:
        return Container(sf, sf.load())
    except BaseException:
        sf.unlock()
        raise
