#!/usr/bin/env bash
# The test command: set up, run the host suite (unit, integration on the
# real kernel, end-to-end with podman, containerd and Docker), then the VM
# stage (tests/vm: the cgroup v2 tests in a pure cgroup v2 guest, and podman
# there). Arguments go to the host suite's pytest. Needs root. Fails if
# either stage fails; both run whatever the other did.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tests/setup.sh || exit 1
log=$(mktemp -t runsc-py-tests.XXXXXX)
trap 'rm -f "$log"' EXIT

summary() {  # pytest's last summary line in the file $1
  grep -E '^=* ?[0-9]+ (passed|failed|error|errors|skipped|deselected|xfailed|xpassed)\b.* in [0-9.]+s' "$1" |
    tail -n 1 | sed -E 's/^=+ //; s/ =+$//'
}

.venv/bin/python -m pytest tests -q "$@" 2>&1 | tee "$log"
host_rc=${PIPESTATUS[0]}
# pytest exits 5 when it collected no test: that is a failure here.
if [ "$host_rc" -eq 5 ]; then
  echo "no tests were collected" >&2
  host_rc=1
fi
host_summary=$(summary "$log")

echo "== VM stage: a pure cgroup v2 guest (tests/vm) =="
bash tests/vm/run.sh 2>&1 | tee "$log"
vm_rc=${PIPESTATUS[0]}
vm_summary=$(sed -n 's/^VM stage: \([0-9].* in [0-9.]*s.*\)$/\1/p' "$log" | tail -n 1)

echo "host suite: ${host_summary:-no summary line} (exit status $host_rc)"
echo "VM stage:   ${vm_summary:-no summary line} (exit status $vm_rc)"
[ "$host_rc" -eq 0 ] && [ "$vm_rc" -eq 0 ]
