#!/usr/bin/env bash
# Run the whole test suite: unit tests and integration tests against real
# redis-server and real Sidekiq (Debian's ruby-sidekiq 6.4, and 7.3 in a
# Debian 13 chroot) on loopback, and the status page in headless chromium
# with axe-core and the statuspage.io client from the npm registry (pinned
# below, installed into ./.cache/npm). On Debian/Ubuntu as root it first
# installs whatever is missing; otherwise the integration tests that lack a
# prerequisite are skipped (or fail, with STATUSBOT_REQUIRE_INTEGRATION=1).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
# Exact versions; tests/integration/npm.py checks that these are what it finds.
npm_packages=(axe-core@4.11.1 statuspage.io@3.3.8)
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v sidekiq >/dev/null || missing+=(ruby-sidekiq)
[ -f /usr/lib/ruby/vendor_ruby/redis/namespace.rb ] || missing+=(ruby-redis-namespace)
command -v debootstrap >/dev/null || missing+=(debootstrap)
"$python" -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
command -v chromium >/dev/null || missing+=(chromium)
# Chromium without its recommended packages has no font at all: text would not render.
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)

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

# The npm packages the browser and client tests use, unless already there at these versions.
npm_wanted=()
for package in "${npm_packages[@]}"; do
  name=${package%@*}
  have=$("$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
         ".cache/npm/node_modules/$name/package.json" 2>/dev/null || true)
  [ "$have" = "${package##*@}" ] || npm_wanted+=("$package")
done
if [ ${#npm_wanted[@]} -gt 0 ]; then
  if command -v npm >/dev/null; then
    echo "npm: installing ${npm_wanted[*]} into .cache/npm"
    mkdir -p .cache/npm
    npm install --prefix .cache/npm --save-exact --no-audit --no-fund --loglevel=error \
      "${npm_packages[@]}"
  else
    echo "npm is missing: cannot install ${npm_wanted[*]}; tests needing them will be skipped" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
if [ $# -gt 0 ]; then
  exec .venv/bin/pytest "$@"
fi
# The whole suite. The two runs against real Sidekiq that mostly wait for jobs
# that sleep (the capacity-advice accuracy run, about 4 minutes, and the job
# metrics' rate and duration run, about 3) go one after the other beside the
# rest rather than after it.
slow=(tests/integration/test_advice_real.py tests/integration/test_jobmetrics_real.py)
mkdir -p .cache
.venv/bin/pytest -q -s "${slow[@]}" > .cache/slow-real.log 2>&1 &
slow_pid=$!
status=0
ignore=()
for path in "${slow[@]}"; do ignore+=("--ignore=$path"); done
.venv/bin/pytest "${ignore[@]}" || status=$?
slow_status=0
wait "$slow_pid" || slow_status=$?
echo "== ${slow[*]} (run beside the rest)"
cat .cache/slow-real.log
[ "$slow_status" = 0 ] || status=$slow_status
exit "$status"
