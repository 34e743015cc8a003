#!/usr/bin/env bash
# Runs inside the VM stage's guest (see tests/vm/harness.py): prepares what
# the tests need that the shared read-only root cannot give, runs
# RESULTS/command.sh in the checkout and writes its exit status to
# RESULTS/status (the host reads it from there).
# usage: guest.sh RESULTS CHECKOUT
results=$1
checkout=$2
set -u
status=125
trap 'echo "$status" > "$results/status"' EXIT

# Unix sockets cannot be bound on 9p: TMPDIR (every test's --root and
# bundles) goes to a tmpfs of the guest.
work=/run/runsc-py-vm
mkdir -p "$work" && mount -t tmpfs -o mode=1777 tmpfs "$work" || { echo "guest: cannot mount a tmpfs on $work"; exit; }
mkdir -p "$work/tmp"
# RUNSC_PY_VM_SHARED: a folder on 9p (the results folder), for tests of what cannot live there.
export TMPDIR=$work/tmp HOME=$work RUNSC_PY_VM_GUEST=1 RUNSC_PY_VM_SHARED=$results PYTHONDONTWRITEBYTECODE=1
# io tests need block devices: loop devices over files on the tmpfs.
modprobe loop 2>/dev/null || echo "guest: modprobe loop failed"
# hugetlb tests need reserved pages of the default size (2 MB).
echo 16 > /proc/sys/vm/nr_hugepages 2>/dev/null || echo "guest: cannot reserve huge pages"
echo "guest: kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"

cd "$checkout" || exit
bash "$results/command.sh"
status=$?
