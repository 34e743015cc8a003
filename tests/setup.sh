#!/usr/bin/env bash
# Set up everything runsc-py and its tests need on a fresh Debian machine
# (as root): system packages, then a virtualenv in .venv with runsc-py and
# its test dependencies installed from this checkout. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  busybox-static          # the rootfs of test and demo containers
  gcc libcap-dev          # python-prctl has no wheel: pip builds it
  libseccomp2             # pyseccomp is pure Python over this library
  procps                  # ps(1), used by `runsc-py ps`
  python3-venv
  podman conmon containerd catatonit tmux   # end-to-end tests with real engines
  runc crun runsc         # reference runtimes for the benchmark and e2e comparisons
  docker.io               # end-to-end tests with a real dockerd (private, started by the tests)
  uidmap slirp4netns      # rootless: newuidmap/newgidmap, rootless podman's network
  linux-image-amd64 qemu-system-x86   # the VM stage: a pure cgroup v2 guest (tests/vm)
  systemd dbus            # the VM stage's systemd guest (systemd as its PID 1, the system bus)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  # Packages with services (docker.io, containerd) must not start them:
  # the tests start private daemons of their own. policy-rc.d is Debian's
  # switch for that, in place only while apt runs.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
  fi
  trap '[ "$own_policy" != 1 ] || rm -f "$policy"' EXIT
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# compat mode: a plain path entry in a .pth file. The default editable
# mode installs an import finder that costs ~10 ms at every interpreter
# start, i.e. at every runtime call.
.venv/bin/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
# An editable install has no bytecode, and where PYTHONDONTWRITEBYTECODE is
# set none is ever written: every runtime call would compile its modules
# again (~40 ms). A regular pip install compiles them; so does this.
.venv/bin/python -m compileall -q runsc_py sandbox gofer specs >/dev/null
# The venv's own setuptools is not used (builds get theirs); its .pth hook
# runs at every interpreter start, i.e. at every runtime call (~0.5 ms).
.venv/bin/python -m pip uninstall -q -y setuptools >/dev/null 2>&1 || true
# The VM stage's boot tool (tests/vm), in a venv of its own: none of its
# dependencies belongs in the runtime's venv, which every runtime call starts.
if [ ! -x .venv-vm/bin/vng ]; then
  "$python" -m venv .venv-vm
  .venv-vm/bin/python -m pip install -q virtme-ng
fi
echo "setup: runsc-py installed at $(pwd)/.venv/bin/runsc-py"
