"""The VM stage: a pure cgroup v2 guest (see harness.py)."""
