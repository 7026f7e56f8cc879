#!/usr/bin/env bash
# Install amk-bridge on a Debian gateway (run as root from a built checkout: npm ci && npm run build).
#
#   systemd/install.sh            install or update (idempotent: run it again after an update)
#   systemd/install.sh uninstall  remove the program, unit and rules; keep config and journal
#
# Puts the build in /opt/amk-bridge, the unit in /etc/systemd/system, the udev rules for the
# lamp adapters in /etc/udev/rules.d, the Kamailio edge example in /etc/kamailio, and an example
# configuration in /etc/amk-bridge (an existing configuration is never overwritten); creates the
# system user amk-bridge (group dialout for the serial lamps) and /var/lib/amk-bridge.
# DESTDIR=/some/root installs into a staging tree (no user, no systemctl): used by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${DESTDIR:-}"
OPT="$ROOT/opt/amk-bridge"
ETC="$ROOT/etc/amk-bridge"
STATE="$ROOT/var/lib/amk-bridge"
UNIT="$ROOT/etc/systemd/system/amk-bridge.service"
UDEV="$ROOT/etc/udev/rules.d/99-amk-bridge-lamps.rules"
KAM="$ROOT/etc/kamailio"
live() { [ -z "$ROOT" ]; }

uninstall() {
  if live && command -v systemctl >/dev/null; then systemctl disable --now amk-bridge 2>/dev/null || true; fi
  rm -rf "$OPT" "$UNIT" "$UDEV"
  if live && command -v systemctl >/dev/null; then systemctl daemon-reload || true; fi
  echo "amk-bridge removed; kept $ETC (configuration) and $STATE (journal, outbox, re-contact data)"
}

if [ "${1:-install}" = uninstall ]; then uninstall; exit 0; fi
[ -f dist/cli/main.js ] || { echo "no build: run npm ci && npm run build first" >&2; exit 1; }
if live; then
  [ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
  command -v node >/dev/null || { echo "Node.js 20 is required" >&2; exit 1; }
  # The notify socket needs the native unix-dgram module (systemd Type=notify).
  node -e "require('./node_modules/unix-dgram')" || { echo "unix-dgram does not load: npm ci on this machine" >&2; exit 1; }
  getent group amk-bridge >/dev/null || addgroup --system amk-bridge
  id amk-bridge >/dev/null 2>&1 || adduser --system --ingroup amk-bridge --home /var/lib/amk-bridge --no-create-home amk-bridge
  adduser amk-bridge dialout >/dev/null
fi

# The program: replaced as a whole, so nothing of an old version lingers.
mkdir -p "$OPT.new"
cp -a dist node_modules package.json hardware config "$OPT.new/"
rm -rf "$OPT" && mv "$OPT.new" "$OPT"

install -d -m 0750 "$ETC" "$STATE"
if [ ! -f "$ETC/amk-bridge.yaml" ]; then
  # The example, with production paths: journal and re-contact data in the state directory.
  sed -e 's#path: state/journal.sqlite.*#path: /var/lib/amk-bridge/journal.sqlite#' \
      -e 's#path: state/recontact.sqlite.*#path: /var/lib/amk-bridge/recontact.sqlite#' \
      -e 's#keyFile: state/recontact.key.*#keyFile: /var/lib/amk-bridge/recontact.key#' \
      -e 's#profilesDir: hardware/profiles#profilesDir: /opt/amk-bridge/hardware/profiles#' \
      -e 's#\$schema=./amk-bridge.schema.json#$schema=/opt/amk-bridge/config/amk-bridge.schema.json#' \
      config/amk-bridge.example.yaml > "$ETC/amk-bridge.yaml"
  echo "wrote $ETC/amk-bridge.yaml (the example): edit it, then: amk-bridge check-config $ETC/amk-bridge.yaml"
fi
install -D -m 0644 systemd/amk-bridge.service "$UNIT"
install -D -m 0644 hardware/udev/99-amk-bridge-lamps.rules "$UDEV"
install -d "$KAM"
install -m 0644 config/kamailio/amk-edge.cfg "$KAM/amk-edge.cfg.example"
[ -f "$KAM/amk-dispatcher.list" ] || install -m 0644 config/kamailio/amk-dispatcher.list "$KAM/amk-dispatcher.list"
ln -sfn /opt/amk-bridge/dist/cli/main.js "$ROOT/usr/local/bin/amk-bridge" 2>/dev/null || { install -d "$ROOT/usr/local/bin"; ln -sfn /opt/amk-bridge/dist/cli/main.js "$ROOT/usr/local/bin/amk-bridge"; }

if live; then
  chown -R root:amk-bridge "$ETC" && chown amk-bridge:amk-bridge "$STATE"
  chmod 0755 "$OPT/dist/cli/main.js"
  udevadm control --reload-rules 2>/dev/null || true
  systemctl daemon-reload
  systemctl enable amk-bridge >/dev/null
  echo "installed; start with: systemctl start amk-bridge (or restart after an update)"
else
  echo "staged in $ROOT"
fi
