#!/usr/bin/env bash
# Build a Debian 13 (trixie) chroot holding Debian's ruby-sidekiq 7.3, for the
# integration tests on a Debian 12 machine. Needs root and debootstrap.
# Usage: scripts/sidekiq7-chroot.sh [DIR]   (default /var/cache/statusbot/trixie)
set -euo pipefail
dir=${1:-${STATUSBOT_SIDEKIQ7_ROOT:-/var/cache/statusbot/trixie}}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -x "$dir/usr/bin/sidekiq" ]; then
  echo "sidekiq 7 chroot already at $dir"
  exit 0
fi
mkdir -p "$dir"
debootstrap --variant=minbase trixie "$dir" "$mirror"
# debootstrap leaves no resolv.conf in the chroot; apt inside needs one.
cp /etc/resolv.conf "$dir/etc/resolv.conf"
chroot "$dir" apt-get update -q
DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -q --no-install-recommends \
  ruby ruby-sidekiq ruby-redis-client
chroot "$dir" apt-get clean
echo "sidekiq 7 chroot ready at $dir: $(chroot "$dir" dpkg-query -W -f='${Version}' ruby-sidekiq)"
