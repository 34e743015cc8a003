#!/bin/bash
# The VM stage's systemd guest: run in the pure cgroup v2 guest of
# tests/vm/harness.py (tests/vm/test_systemd_vm.py does that), it starts
# systemd as PID 1 of a new pid + mount namespace, then runs
# tests/vm/systemd_checks.py inside that namespace, first talking to
# systemd's private socket (no bus daemon), then again through the system
# bus. (`vng --systemd` does not boot under TCG in minutes; this does in
# seconds.) Prints its logs; exits non-zero if a round failed.
#
#   bash tests/vm/systemd_guest.sh [PYTEST -k EXPRESSION] [ROUNDS]
# ROUNDS: "private bus" (the default), or one of them.
set -u
REPO=$(pwd)
CHECKS=${1:-}
ROUNDS=${2:-private bus}
OUT=${TMPDIR:-/tmp}/systemd-guest
mkdir -p "$OUT" && : > "$OUT/rc"
PY="$REPO/.venv/bin/python"
log() { echo "systemd-guest: $*" | tee -a "$OUT/guest.log"; }

# --- systemd -----------------------------------------------------------------------------------------
# Its own /run, /var/lib and /var/log (tmpfs: sockets cannot live on 9p, and
# the engines' state starts empty); container=other tells systemd it is not
# booting a machine (no mounts of its own, no getty).
unshare --pid --fork --mount --mount-proc --propagation private /bin/sh -c '
    mount -t tmpfs -o mode=755 tmpfs /run &&
    mount -t tmpfs tmpfs /var/lib && mount -t tmpfs tmpfs /var/log &&
    exec env -i container=other PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        /lib/systemd/systemd --system --log-target=console --log-level=info --log-time=yes' \
    < /dev/null > "$OUT/systemd.log" 2>&1 &
UNSHARE=$!
SD=""
for _ in $(seq 1 300); do
    SD=$(cat "/proc/$UNSHARE/task/$UNSHARE/children" 2>/dev/null | awk '{print $1}')
    [ -n "$SD" ] && break
    sleep 0.1
done
[ -n "$SD" ] || { log "systemd did not start"; cat "$OUT/systemd.log"; exit 1; }
NS=(nsenter -t "$SD" -m -p)
up=""
for _ in $(seq 1 240); do
    if [ -n "$("${NS[@]}" systemctl show -p Version --value 2>/dev/null)" ]; then up=1; break; fi
    sleep 0.5
done
[ -n "$up" ] || { log "systemd did not answer within 120s"; cat "$OUT/systemd.log"; exit 1; }
# sd_booted(): engines pick the systemd cgroup manager, and systemctl talks
# to PID 1, only where /run/systemd/system exists; systemd in a namespace
# does not always make it.
"${NS[@]}" mkdir -p /run/systemd/system
log "systemd $("${NS[@]}" systemctl show -p Version --value) is up (pid $SD on the host, 1 inside)"

run_checks() {  # NAME: pytest of systemd_checks.py inside systemd's namespaces; $CHECKS: pytest's -k
    "${NS[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PYTHONDONTWRITEBYTECODE=1 \
        SYSTEMD_CHECKS_BUS="$1" TMPDIR=/run/checks-tmp \
        sh -c 'mkdir -p /run/checks-tmp && cd "$1" && exec "$2" -m pytest -p no:cacheprovider -v -k "$3" \
               tests/vm/systemd_checks.py' sh "$REPO" "$PY" "${CHECKS:-}" 2>&1 | tee "$OUT/pytest-$1.log"
    echo "$1 ${PIPESTATUS[0]}" >> "$OUT/rc"
    log "checks over $1: $(tail -1 "$OUT/pytest-$1.log")"
}

case " $ROUNDS " in *" private "*) run_checks private ;; esac

# --- the system bus --------------------------------------------------------------------------------------
# The packaged dbus.service (systemd connects to the bus once that unit is
# up), bounded; failing that, dbus-daemon by hand and a re-exec of systemd,
# which connects to a bus it finds at start.
bus_up() {
    for _ in $(seq 1 "$1"); do
        timeout 20 "${NS[@]}" busctl --system status org.freedesktop.systemd1 > /dev/null 2>&1 && return 0
        sleep 1
    done
    return 1
}
# Without DefaultDependencies: the boot transaction of this systemd never
# reaches sysinit.target (a unit it waits for does not exist in the guest),
# and a start job ordered after it waits forever.
"${NS[@]}" sh -c 'for u in dbus.socket dbus.service; do
    mkdir -p /run/systemd/system/$u.d &&
    printf "[Unit]\nDefaultDependencies=no\n" > /run/systemd/system/$u.d/no-boot-order.conf
done'
timeout 60 "${NS[@]}" systemctl daemon-reload >> "$OUT/guest.log" 2>&1
timeout 20 "${NS[@]}" systemctl list-jobs --no-pager 2>&1 | head -20
timeout 120 "${NS[@]}" systemctl start dbus.socket dbus.service >> "$OUT/guest.log" 2>&1
if ! bus_up 30; then
    log "dbus.service did not give a bus with systemd on it: $(timeout 20 "${NS[@]}" systemctl is-active dbus.service)"
    timeout 20 "${NS[@]}" systemctl status --no-pager -l dbus.socket dbus.service 2>&1 | tail -40
    grep -i dbus "$OUT/systemd.log" | tail -20
    timeout 20 "${NS[@]}" systemctl stop dbus.service dbus.socket >> "$OUT/guest.log" 2>&1
    "${NS[@]}" sh -c 'mkdir -p /run/dbus && dbus-daemon --system --fork' >> "$OUT/guest.log" 2>&1
    timeout 120 "${NS[@]}" systemctl daemon-reexec >> "$OUT/guest.log" 2>&1
    bus_up 60 || log "no bus with systemd on it"
fi
log "system bus: $("${NS[@]}" busctl --system status org.freedesktop.systemd1 2>&1 | head -1)"
case " $ROUNDS " in *" bus "*) run_checks bus ;; esac
"${NS[@]}" systemctl list-units --all --no-pager 'runsc-py*' >> "$OUT/guest.log" 2>&1
log "rounds: $(tr '\n' ' ' < "$OUT/rc")"
if [ "$(grep -c ' 0$' "$OUT/rc")" != "$(echo $ROUNDS | wc -w)" ]; then
    echo "== systemd's log"; grep -v '^$' "$OUT/systemd.log" | tail -150
    exit 1
fi
