#!/usr/bin/env bash
# Run the unit suite (never the integration tests: libfaketime breaks
# redis-server) at wall-clock times where a test that reads the real clock
# would show it: after a Monday 09:00 slot, on the 1st of a month, across the
# ISO week-53 new year, both sides of Europe/Berlin's DST changes, a leap day,
# and with TZ set for the process. The clock runs on from each date (waits
# still work); each date runs once and prints one summary line.
#
#   bash scripts/faketime_suite.sh                  # every date
#   bash scripts/faketime_suite.sh -k report        # extra arguments go to pytest
#   DATES='2026-12-08 05:30:00' bash scripts/faketime_suite.sh   # one date (UTC)
#   LOGDIR=/tmp/ft bash scripts/faketime_suite.sh   # keep each run's pytest output
#
# Needs Debian's libfaketime (`apt-get install faketime`) and a C compiler.
#
# Why not plain `faketime -f '@…' pytest`: with libfaketime 0.9.10 on glibc
# >= 2.30 that hangs the first timed lock wait for ever (Python waits with
# sem_clockwait(CLOCK_MONOTONIC), which libfaketime does not intercept, against
# a faked monotonic deadline decades ahead). So only the wall clock is faked
# (FAKETIME_DONT_FAKE_MONOTONIC=1, which is all these tests are about), and a
# ten-line preload fixes the one bug that setting has: libfaketime shifts
# absolute CLOCK_MONOTONIC deadlines of clock_nanosleep by the fake offset,
# so every time.sleep() fails with EINVAL. The fake time is a fixed offset
# from now ("+N" seconds), so child processes see the same running clock.
# (libfaketime issues 390 and 426 on GitHub, wolfcw/libfaketime.)
set -euo pipefail
cd "$(dirname "$0")/.."

lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
  echo "libfaketime not found: apt-get install faketime" >&2
  exit 2
fi
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "no C compiler ($cc) for the sleep shim" >&2; exit 2; }
pytest=${PYTEST:-.venv/bin/pytest}
[ -x "$pytest" ] || { echo "no $pytest: python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'" >&2; exit 2; }
python=$(dirname "$pytest")/python

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/shim.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The monotonic clock is real here (FAKETIME_DONT_FAKE_MONOTONIC=1): sleep on
   it with the kernel directly; leave every other clock to libfaketime. */
int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
                    struct timespec *rem) {
    static int (*next)(clockid_t, int, const struct timespec *, struct timespec *);
    if (clock == CLOCK_MONOTONIC)
        return syscall(SYS_clock_nanosleep, clock, flags, req, rem) == 0 ? 0 : errno;
    if (!next) next = (int (*)(clockid_t, int, const struct timespec *,
                               struct timespec *))dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock, flags, req, rem);
}
EOF
"$cc" -shared -fPIC -O2 -o "$work/shim.so" "$work/shim.c" -ldl

# "UTC date|TZ for the process" (empty TZ: the machine's own).
default_dates="2026-12-08 05:30:00|
2026-12-07 09:00:30|
2027-01-01 09:30:00|
2026-12-31 23:58:00|
2026-10-25 01:30:00|
2026-10-25 02:30:00|
2027-03-28 01:30:00|
2028-02-29 12:00:00|
2026-10-25 00:30:00|Europe/Berlin
2026-12-31 23:58:00|Pacific/Kiritimati"
dates=${DATES:-$default_dates}

logdir=${LOGDIR:-$work}
mkdir -p "$logdir"
status=0
summary=()
run=0
while IFS='|' read -r when zone; do
  [ -n "$when" ] || continue
  offset=$(( $(date -u -d "$when" +%s) - $(date -u +%s) ))
  [ "$offset" -lt 0 ] || offset="+$offset"
  label="$when UTC${zone:+ TZ=$zone}"
  run=$((run + 1))
  log="$logdir/run$run.log"
  echo "=== $label"
  start=$(date +%s)
  fake=(env ${zone:+TZ=$zone} LD_PRELOAD="$work/shim.so:$lib${LD_PRELOAD:+:$LD_PRELOAD}"
        FAKETIME="$offset" FAKETIME_DONT_FAKE_MONOTONIC=1)
  # What the tests will see (a child process, as the CLI tests start them).
  seen=$("${fake[@]}" "$python" -c 'import datetime, time; time.sleep(0.01)
print(datetime.datetime.now().astimezone().isoformat(" ", "seconds"))')
  echo "python sees $seen"
  set +e
  "${fake[@]}" "$pytest" -q -m "not integration" -p no:cacheprovider --timeout=120 "$@" \
    >"$log" 2>&1
  rc=$?
  set -e
  grep -E '^(FAILED|ERROR) ' "$log" || true
  line=$(tail -n 1 "$log")
  echo "$line"
  summary+=("$label (python saw $seen): $line ($(( $(date +%s) - start )) s)")
  [ "$rc" = 0 ] || status=1
done <<<"$dates"

echo
echo "=== summary (command: bash scripts/faketime_suite.sh $*)"
printf '%s\n' "${summary[@]}"
exit "$status"
