"""Publishing the status page: run ``[page] publish_command`` in the background.

The page is written on the bot's host; the command the admin chose (rsync,
rclone, …) copies it to a host or bucket that stays up when the instance does
not. It must never hold up or break the tick, so ``Publisher`` runs it beside
the loop:

- ``changed()`` only records that the page changed and wakes a supervisor
  thread; it never waits for the command.
- The command runs as a child in a session (and process group) of its own,
  split by ``shlex`` at config time and never run by a shell, ``{dir}``
  replaced by the page's directory. Its stdin and stdout are closed; the end of
  its stderr is logged when it fails.
- A run still going at ``timeout`` is killed with its whole process group (an
  rsync and the ssh it started go together).
- A failed run is retried after 30 s, then 60 s, 120 s, … at most 30 min apart
  (``defaults.PUBLISH_RETRY_*``); a success resets the pause.
- Changes that arrive while a run is in flight set one flag: one further run
  follows, however many changes came meanwhile.
- ``news()`` hands the tick what the admins should hear of: once when
  publishing starts failing (``defaults.PUBLISH_TELL_AFTER`` runs in a row),
  once when it works again. The tick turns that into a message
  (``bot/pagetick.py``); this module has no store and no words of its own.

Decisions read the injected ``clock`` (monotonic seconds), so tests drive
them with ``background=False`` and ``poll()``; the thread only sleeps
between polls. Only the program's name is ever logged or told, never the whole
command line: it may hold a password or a bucket key.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from bot import defaults
from bot.outbox import backoff_delay
from bot.wording import TEXT_LIMIT, neutral

log = logging.getLogger(__name__)

WATCH_STEP = 0.2
"""Seconds between looks at a running command (``waitpid`` without waiting: cheap)."""

IDLE_STEP = 60.0
"""Longest sleep of the supervisor thread when nothing is due (it is woken on a change)."""

_STDERR_TAIL = 4096
"""Bytes of a failed run's stderr read back for the log."""


class Reason(enum.Enum):
    """Why a run of the publish command failed."""

    EXIT = "exit"
    """It exited with a status other than 0 (``detail``: the status)."""
    SIGNAL = "signal"
    """Something else ended it with a signal (``detail``: the signal's name)."""
    TIMEOUT = "timeout"
    """It ran past the timeout and was killed (``detail``: the timeout in seconds)."""
    NOT_STARTED = "not-started"
    """It could not be started (``detail``: the system's error)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed run: why, and the detail that goes with the reason."""

    reason: Reason
    detail: str


@dataclass(frozen=True, slots=True)
class News:
    """A change the admins should hear of: publishing fails (``failure`` set) or works again.

    ``count`` is the number of failed runs in a row (so far, or before the recovery).
    """

    failure: Failure | None
    count: int

    @property
    def failing(self) -> bool:
        """True when publishing started failing, False when it works again."""
        return self.failure is not None


def command_line(argv: Sequence[str], directory: str) -> list[str]:
    """Return ``argv`` with ``{dir}`` replaced by ``directory`` (``{{``/``}}`` are braces)."""
    line = []
    for arg in argv:
        try:
            line.append(arg.format(dir=directory))
        except (ValueError, KeyError, IndexError, AttributeError):  # a hand-made PageConfig
            line.append(arg.replace("{dir}", directory))
    return line


def program_name(argv: Sequence[str]) -> str:
    """Return the name of the command's program only (``rsync``), safe to log and to tell."""
    return neutral(os.path.basename(argv[0]) if argv else "", 40) or "?"


@dataclass(slots=True)
class _Run:
    process: subprocess.Popen[bytes]
    started: float
    deadline: float
    stderr: IO[bytes]


class Publisher:
    """Runs the publish command after page changes, in the background (see the module).

    ``told`` says the admins were already told of a failing streak (it is
    kept in the state file across restarts by ``bot/pagetick.py``): then the
    next success is news, and further failures are not.
    """

    def __init__(self, argv: Sequence[str], directory: str, *, timeout: float,
                 clock: Callable[[], float] = time.monotonic,
                 retry_base: float = defaults.PUBLISH_RETRY_BASE,
                 retry_max: float = defaults.PUBLISH_RETRY_MAX,
                 tell_after: int = defaults.PUBLISH_TELL_AFTER,
                 background: bool = True, told: bool = False) -> None:
        if not argv:
            raise ValueError("publish command is empty")
        self.command = command_line(argv, directory)
        self.program = program_name(argv)
        self.timeout = timeout
        self.clock = clock
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.tell_after = max(1, tell_after)
        self.background = background
        self.told = told
        self.failures = 0
        """Failed runs in a row (0 after a success)."""
        self.next_try = 0.0
        """Clock time before which no run starts (the backoff after a failure)."""
        self.started = 0
        """Runs started (or tried) so far."""
        self.succeeded = 0
        """Runs that exited with status 0."""
        self.last_failure: Failure | None = None
        self._pending = False
        self._run: _Run | None = None
        self._news: list[News] = []
        self._closed = False
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what the tick calls ------------------------------------------------------------

    def changed(self) -> None:
        """Ask for a run because the page changed; returns at once.

        A change while a run is in flight (or while backing off after a
        failure) is folded into the next run.
        """
        with self._lock:
            if self._closed:
                return
            self._pending = True
            if self.background and self._thread is None:
                self._thread = threading.Thread(target=self._supervise, name="page-publish",
                                                daemon=True)
                self._thread.start()
        self._wake.set()

    def news(self) -> list[News]:
        """Return, and forget, what the admins should hear of since the last call."""
        if not self._news:  # read without the lock: the tick pays nothing on most ticks
            return []
        with self._lock:
            news, self._news = self._news, []
        return news

    @property
    def running(self) -> bool:
        """True while a run is in flight."""
        return self._run is not None

    @property
    def pending(self) -> bool:
        """True when a change waits for a run (the next one, or a retry)."""
        return self._pending

    @property
    def pid(self) -> int | None:
        """The running command's process id (also its process group's), or None."""
        run = self._run
        return None if run is None else run.process.pid

    # --- the supervisor -----------------------------------------------------------------

    def poll(self) -> float | None:
        """Take one step: reap or kill a run, start one when due.

        Returns the seconds until a step is next needed, or None when nothing
        is due until the next change. The supervisor thread calls it; tests
        call it directly (``background=False``) with their own clock.
        """
        with self._settled:
            wait = self._step(self.clock())
            self._settled.notify_all()
            return wait

    def _supervise(self) -> None:
        while True:
            try:
                wait = self.poll()
            except Exception:  # a bug must not end publishing for good: log, go on
                log.exception("status page publishing failed unexpectedly")
                wait = IDLE_STEP
            with self._lock:
                if self._closed:
                    return
            self._wake.wait(IDLE_STEP if wait is None else min(max(wait, 0.0), IDLE_STEP))
            self._wake.clear()

    def _step(self, now: float) -> float | None:
        run = self._run
        if run is not None:
            code = run.process.poll()
            if code is None:
                if now < run.deadline:
                    return min(run.deadline - now, WATCH_STEP)
                _kill_group(run.process, self.program)
                self._finished(run, now, Failure(Reason.TIMEOUT, f"{self.timeout:g}"))
            elif code == 0:
                self._finished(run, now, None)
            elif code < 0:
                self._finished(run, now, Failure(Reason.SIGNAL, _signal_name(-code)))
            else:
                self._finished(run, now, Failure(Reason.EXIT, str(code)))
        if self._closed or not self._pending:
            return None
        if now < self.next_try:
            return self.next_try - now
        self._start(now)
        return WATCH_STEP if self._run is not None else max(0.0, self.next_try - now)

    def _start(self, now: float) -> None:
        self._pending = False
        self.started += 1
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the run ends
        try:
            process = subprocess.Popen(  # the admin's own command, split, no shell
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True, close_fds=True)
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            stderr.close()
            self._failed(now, Failure(Reason.NOT_STARTED,
                                      neutral(getattr(exc, "strerror", None) or exc,
                                              TEXT_LIMIT)), "")
            return
        log.debug("publishing the status page with %s (pid %d)", self.program, process.pid)
        self._run = _Run(process, now, now + self.timeout, stderr)

    def _finished(self, run: _Run, now: float, failure: Failure | None) -> None:
        self._run = None
        tail = _tail(run.stderr) if failure is not None else ""
        run.stderr.close()
        if failure is not None:
            self._failed(now, failure, tail)
            return
        self.succeeded += 1
        if self.failures:
            log.info("the status page is published again (%s worked after %d failed runs)",
                     self.program, self.failures)
        else:
            log.debug("status page published by %s in %.1f s", self.program, now - run.started)
        if self.told:
            self._news.append(News(None, self.failures))
            self.told = False
        self.failures = 0
        self.last_failure = None
        self.next_try = now

    def _failed(self, now: float, failure: Failure, tail: str) -> None:
        self.failures += 1
        self.last_failure = failure
        self._pending = True  # the page still needs publishing: retry it
        delay = backoff_delay(self.failures, self.retry_base, self.retry_max)
        self.next_try = now + delay
        log.log(logging.WARNING if self.failures in (1, self.tell_after) else logging.DEBUG,
                "publishing the status page failed (%s: %s %s; %d in a row, next try in "
                "%.0f s)%s", self.program, failure.reason.value, failure.detail, self.failures,
                delay, f": {tail}" if tail else "")
        if not self.told and self.failures >= self.tell_after:
            self._news.append(News(failure, self.failures))
            self.told = True

    # --- stopping -----------------------------------------------------------------------

    def close(self, grace: float = 0.0) -> None:
        """Stop: let a run in flight (or one due now) finish within ``grace`` s, then kill it.

        A second Ctrl-C while waiting kills it at once. Never raises.
        """
        with self._settled:
            if grace > 0 and self._thread is not None and self._thread.is_alive():
                with contextlib.suppress(KeyboardInterrupt):
                    self._settled.wait_for(self._quiet, timeout=grace)
            self._closed = True
            run = self._run
            if run is not None:
                log.warning("stopping: %s (publishing the status page) killed after %.0f s",
                            self.program, self.clock() - run.started)
                _kill_group(run.process, self.program)
                self._run = None
                run.stderr.close()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _quiet(self) -> bool:
        """Say whether nothing runs and nothing is due now (called with the lock held)."""
        return self._run is None and (not self._pending or self.clock() < self.next_try)


def _kill_group(process: subprocess.Popen[bytes], program: str) -> None:
    """Kill the command and everything in its process group, and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its own session: group id == its pid
    with contextlib.suppress(OSError):
        process.kill()  # in case it left its group; harmless when already dead
    try:
        process.wait(timeout=5.0)
    except subprocess.TimeoutExpired:  # uninterruptible sleep (a dead NFS mount)
        log.error("%s did not die after SIGKILL (pid %d)", program, process.pid)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _tail(stderr: IO[bytes]) -> str:
    """Return the last line of what the command wrote to stderr, made safe to log."""
    try:
        size = stderr.seek(0, os.SEEK_END)
        stderr.seek(max(0, size - _STDERR_TAIL))
        text = stderr.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return neutral(lines[-1], TEXT_LIMIT) if lines else ""
