#!/usr/bin/env bash
# Run the whole test suite: unit tests and integration tests against real
# redis-server and real Sidekiq (Debian's ruby-sidekiq 6.4, and 7.3 in a
# Debian 13 chroot) on loopback. On Debian/Ubuntu as root it first installs
# whatever is missing; otherwise the integration tests that lack a
# prerequisite are skipped (or fail, with STATUSBOT_REQUIRE_INTEGRATION=1).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v sidekiq >/dev/null || missing+=(ruby-sidekiq)
[ -f /usr/lib/ruby/vendor_ruby/redis/namespace.rb ] || missing+=(ruby-redis-namespace)
command -v debootstrap >/dev/null || missing+=(debootstrap)
"$python" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  # Sidekiq 7.3 comes from Debian 13: natively there, in a chroot elsewhere.
  if ! dpkg-query -W -f='${Version}' ruby-sidekiq 2>/dev/null | grep -q '^7\.'; then
    bash scripts/sidekiq7-chroot.sh
  fi
elif [ ${#missing[@]} -gt 0 ]; then
  echo "not root: cannot install ${missing[*]}; tests needing them will be skipped" >&2
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
exec .venv/bin/pytest "$@"
