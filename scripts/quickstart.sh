#!/usr/bin/env bash
# Set statusbot up on this machine and run its main job on the embedded
# defaults: `statusbot run`, reading REDIS_URL or redis://127.0.0.1:6379/0 and,
# with no instance configured, printing its posts here instead of sending them.
# On a fresh machine with no Redis there, it starts a throwaway redis-server on
# that address for as long as the bot runs (installing it first when run as
# root on Debian/Ubuntu), so there is something to read. Ctrl-C stops it.
# Arguments go to `statusbot run`, e.g. `--once` for a single tick.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
  else
    echo "please install: $*" >&2
    exit 1
  fi
}
"$python" -m venv --help >/dev/null 2>&1 || apt_install python3-venv
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check '.[demo]'

# Ctrl-C reaches the whole process group: redis-server may have stopped already,
# so a failing kill is no error (under set -e it would make the script exit 1).
redis_pid=
redis_dir=
stop_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    rm -rf "$redis_dir"
    echo "the throwaway redis-server stopped too" >&2
  fi
}

url=${REDIS_URL:-redis://127.0.0.1:6379/0}
if ! .venv/bin/python - "$url" <<'PY' 2>/dev/null
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=1, socket_timeout=1).ping()
PY
then
  if [ "$url" != "redis://127.0.0.1:6379/0" ]; then
    echo "no Redis answers at REDIS_URL; running the check anyway" >&2
  else
    command -v redis-server >/dev/null || apt_install redis-server
    echo "no Redis at $url: starting a throwaway redis-server there while the bot runs" >&2
    redis_dir=$(mktemp -d)
    redis-server --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir "$redis_dir" --logfile "" >/dev/null &
    redis_pid=$!
    trap stop_redis EXIT
    for _ in $(seq 50); do
      .venv/bin/python -c 'import redis; redis.Redis(socket_timeout=0.2).ping()' 2>/dev/null && break
      sleep 0.1
    done
  fi
fi
.venv/bin/statusbot check || true   # one reading first, as a table
exec_status=0
.venv/bin/statusbot run "$@" || exec_status=$?
if [ "$exec_status" = 0 ]; then
  echo "statusbot stopped" >&2
else
  echo "statusbot stopped with exit status $exec_status" >&2
fi
exit "$exec_status"
