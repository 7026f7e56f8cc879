#!/usr/bin/env bash
# `npm test`: installs everything the tests need on a fresh Debian 12 + Node 20 machine
# (Debian packages for the real SIP/MQTT/serial peers, npm packages), builds, and runs the
# whole suite. Ends with a plain "N passed, N failed" line.
set -uo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the real peers the tests talk to.
declare -A PKG=([sipp]=sip-tester [baresip]=baresip-core [socat]=socat [sox]=sox [mosquitto]=mosquitto [kamailio]=kamailio [systemd-analyze]=systemd [python3]=python3)
need=()
for bin in "${!PKG[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("${PKG[$bin]}")
done
if ((${#need[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq || exit 1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || exit 1
  # The tests start their own Kamailio and mosquitto on their own ports; a system service the
  # install just started would hold 5060/1883 (the RFC 4475 test answers on Via port 5060).
  if command -v systemctl >/dev/null 2>&1; then
    for svc in kamailio mosquitto; do $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true; done
  fi
fi

# npm packages (dev dependencies included: tap, typescript).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
npm run --silent build || exit 1

out=$(mktemp)
npx tap --reporter=tap "$@" 2>&1 | tee "$out"
code=${PIPESTATUS[0]}
# tap's closing comment: "# { total: N, pass: N, fail: N, skip: N }" (fail/skip omitted when 0)
pass=$(grep -Eo '^# \{ total: [0-9]+, pass: [0-9]+' "$out" | tail -1 | grep -Eo '[0-9]+$')
fail=$(grep -E '^# \{ total:' "$out" | tail -1 | grep -Eo 'fail: [0-9]+' | grep -Eo '[0-9]+')
rm -f "$out"
echo "${pass:-0} passed, ${fail:-0} failed"
[ "$code" = 0 ] && [ -n "$pass" ] && [ "$pass" != 0 ]
