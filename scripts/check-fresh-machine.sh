#!/usr/bin/env bash
# Runs the README's two commands on a fresh Debian 12 (bookworm) machine: a minimal root built from
# Debian's packages with mmdebstrap (variant "apt": essential packages + apt, nothing else), the
# committed checkout copied in (git's HEAD, so files you did not commit do not help), ../shared beside
# it, then the README's first command and its test command run inside with chroot.
# A missing install step in scripts/setup.sh shows up here and nowhere else.
#
#   bash scripts/check-fresh-machine.sh            # both commands (setup + main job, then the tests)
#   SIEVE_FRESH_TESTS=0 bash scripts/check-fresh-machine.sh   # only the first command
#
# Needs root (mmdebstrap, chroot, bind mounts) and the network to Debian's mirror and PyPI. The host's
# CA bundle and pip configuration are copied in: where the registries are reached through a TLS proxy,
# pip inside the root fails certificate verification without them. Takes about 25 minutes on 2 cores
# (root 1 min, setup ~6 min, tests ~15 min). The root stays in $SIEVE_FRESH_DIR for a look afterwards.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${SIEVE_FRESH_DIR:-/tmp/sieve-fresh-machine}"
CHROOT="$WORK/root"
SUITE=bookworm
CHECKOUT=/work/sieve  # inside the root; ../shared lands beside it as /work/shared

[[ $EUID -eq 0 ]] || { echo "check-fresh-machine.sh: needs root (mmdebstrap, chroot)" >&2; exit 2; }
if ! command -v mmdebstrap >/dev/null; then
  echo "==> host: installing mmdebstrap"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi

# The README's commands: the first two lines of its first ```bash block.
mapfile -t COMMANDS < <(awk '/^```bash/{inside=1; next} inside && /^```/{exit} inside' "$ROOT/README.md" | head -n 2)
[[ ${#COMMANDS[@]} -eq 2 ]] || { echo "check-fresh-machine.sh: README.md has no two-line first bash block" >&2; exit 1; }

unmount_all() {
  for mount_point in dev/pts dev proc sys; do
    mountpoint -q "$CHROOT/$mount_point" && umount -l "$CHROOT/$mount_point"
  done
  return 0
}
trap unmount_all EXIT

unmount_all
rm -rf "$WORK"
mkdir -p "$WORK"
echo "==> root: mmdebstrap --variant=apt $SUITE (Debian's packages only)"
start=$SECONDS
mmdebstrap --quiet --variant=apt "$SUITE" "$CHROOT" >"$WORK/mmdebstrap.log" 2>&1 \
  || { tail -n 20 "$WORK/mmdebstrap.log"; exit 1; }

# What the registries need on this network, and nothing that the project should install itself.
cp -L /etc/resolv.conf "$CHROOT/etc/resolv.conf"
# The host's CA bundle goes to a file of its own: installing ca-certificates inside the root
# regenerates /etc/ssl/certs/ca-certificates.crt from Debian's list and would drop a proxy's CA.
HOST_CA=/etc/sieve-host-ca-bundle.crt
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  cp /etc/ssl/certs/ca-certificates.crt "$CHROOT$HOST_CA"
fi
for conf in /etc/pip.conf /etc/apt/apt.conf.d/99artifact-registry; do
  [[ -f $conf ]] && mkdir -p "$CHROOT$(dirname "$conf")" && cp "$conf" "$CHROOT$conf"
done

echo "==> checkout: git HEAD of $ROOT into $CHECKOUT, $(realpath "$ROOT/../shared") into /work/shared"
mkdir -p "$CHROOT$CHECKOUT"
git -C "$ROOT" archive HEAD | tar -x -C "$CHROOT$CHECKOUT"
cp -a "$ROOT/../shared" "$CHROOT/work/shared"

mount --bind /dev "$CHROOT/dev"
mount --bind /dev/pts "$CHROOT/dev/pts"
mount -t proc proc "$CHROOT/proc"
mount -t sysfs sys "$CHROOT/sys"

# A clean environment: only what a new login shell on a fresh machine would have, plus the host's
# CA bundle for pip and Python's HTTPS (environment variables override the copied pip.conf).
run_inside() {
  chroot "$CHROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 PIP_CERT=$HOST_CA REQUESTS_CA_BUNDLE=$HOST_CA SSL_CERT_FILE=$HOST_CA CI=true \
    /bin/bash -c "cd $CHECKOUT && $1"
}

echo "==> root ready in $((SECONDS - start)) s"
phase=$SECONDS
echo "==> fresh machine, README command 1: ${COMMANDS[0]}"
run_inside "${COMMANDS[0]}"
echo "==> command 1 passed in $((SECONDS - phase)) s"
if [[ "${SIEVE_FRESH_TESTS:-1}" != 0 ]]; then
  phase=$SECONDS
  echo "==> fresh machine, README command 2: ${COMMANDS[1]}"
  run_inside "${COMMANDS[1]}"
  echo "==> command 2 passed in $((SECONDS - phase)) s"
fi
echo "==> fresh-machine check passed in $((SECONDS - start)) s (root kept in $CHROOT)"
