"""Real servers for the integration tests: redis-server, Sidekiq, node_exporter and PostgreSQL.

Sidekiq 6.4 is Debian 12's ``ruby-sidekiq`` on this machine; Sidekiq 7.3 is
Debian 13's, run inside the chroot that ``scripts/sidekiq7-chroot.sh`` builds
(or directly, on a Debian 13 machine). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from bot.demo import free_port

RUBY_DIR = Path(__file__).parent / "ruby"
SIDEKIQ7_ROOT = Path(os.environ.get("STATUSBOT_SIDEKIQ7_ROOT", "/var/cache/statusbot/trixie"))


README = Path(__file__).resolve().parents[2] / "README.md"


def readme_acl(user: str, password: str) -> list[str]:
    """Return README.md's ``ACL SETUSER <user>`` line as words, ``password`` for CHANGE-ME.

    The documented lines are the ones tested: the agent's and the standby
    lease's ``statusbot-agent``, the bot's read-only ``statusbot``.
    """
    match = re.search(rf"^ACL SETUSER {re.escape(user)} .*$",
                      README.read_text(encoding="utf-8"), re.MULTILINE)
    assert match is not None, f"README.md lost the ACL line of {user}"
    return shlex.split(match.group(0).replace(">CHANGE-ME", f">{password}"))


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.1) -> None:
    """Poll ``predicate`` until it is true; fail the test with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


class RedisServer:
    """A throwaway redis-server on a free loopback port, without persistence."""

    def __init__(self, workdir: Path, extra: Sequence[str] = (),
                 start_timeout: float = 10.0) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.log = workdir / f"redis-{self.port}.log"
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", str(workdir),
             "--logfile", str(self.log), *extra],
        )
        try:
            wait_for(self._pings, start_timeout, f"redis-server on port {self.port}")
        except BaseException:
            self.stop()  # it may be running yet not answering: never leave it behind
            raise

    @property
    def url(self) -> str:
        """The redis:// URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        """Return an admin client (the test's own; the bot never writes)."""
        return redis.Redis(host="127.0.0.1", port=self.port, decode_responses=True, **kwargs)

    def _pings(self) -> bool:
        try:
            return bool(self.client(socket_timeout=1).ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        """Stop the server and wait for it."""
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate ``process`` (kill it after 10 s) and wait for it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
"""Debian's Prometheus node_exporter (package prometheus-node-exporter)."""


class NodeExporter:
    """Debian's real node_exporter on a free loopback port (its default collectors)."""

    def __init__(self, workdir: Path, start_timeout: float = 10.0) -> None:
        self.port = free_port()
        self.log = workdir / f"node-exporter-{self.port}.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_for(self._answers, start_timeout, f"node_exporter on port {self.port}")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The URL of its metrics."""
        return f"http://127.0.0.1:{self.port}/metrics"

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"node_exporter exited: {self.log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the exporter and wait for it."""
        stop_process(self.process)


class Sidekiq:
    """One Sidekiq installation: runs its Ruby API scripts and workers.

    ``root`` is a chroot holding Sidekiq (None: the host's). The Ruby files are
    copied into a directory visible inside that root. Sidekiq reads
    /proc/<pid>/status for its heartbeat's RSS, so each command in the chroot
    runs in a private mount namespace with its own /proc: the mount goes with
    the process, and nothing is left mounted for a later ``rm -rf`` of the
    chroot to walk into (nor unmounted under another test run using it).
    """

    def __init__(self, root: Path | None, redis_url: str, namespace: str = "") -> None:
        self.root = root
        base = (root / "tmp") if root is not None else Path(tempfile.gettempdir())
        self.host_dir = base / f"statusbot-{uuid.uuid4().hex[:12]}"
        shutil.copytree(RUBY_DIR, self.host_dir)
        self.dir = Path("/tmp") / self.host_dir.name if root is not None else self.host_dir
        self.env = {**os.environ, "REDIS_URL": redis_url, "SIDEKIQ_NS": namespace}
        self.workers: list[subprocess.Popen[bytes]] = []

    def _argv(self, argv: Sequence[str]) -> list[str]:
        if self.root is None:
            return list(argv)
        # unshare and sh exec in place: the pid stays the command's, for send_signal.
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"', str(self.root), *argv]

    def ruby(self, script: str, stdin: str = "") -> str:
        """Run one of the Ruby scripts and return what it printed."""
        result = subprocess.run(
            self._argv(["ruby", str(self.dir / script)]), input=stdin.encode(),
            env=self.env, capture_output=True, timeout=120, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{script} failed ({result.returncode}): "
                               f"{result.stderr.decode(errors='replace')[-2000:]}")
        return result.stdout.decode()

    def enqueue(self, plan: list[dict[str, Any]]) -> None:
        """Push jobs as Sidekiq's own client does (see ruby/enqueue.rb)."""
        self.ruby("enqueue.rb", json.dumps(plan))

    def api(self) -> dict[str, Any]:
        """Return what Sidekiq's Ruby API (Stats, Queue, ProcessSet) reports."""
        # Sidekiq 7 logs its connection to stdout first; the JSON is the last line.
        result: dict[str, Any] = json.loads(self.ruby("api.rb").strip().splitlines()[-1])
        return result

    def start_worker(self, queues: Sequence[str], concurrency: int,
                     tag: str = "mastodon") -> subprocess.Popen[bytes]:
        """Start a real Sidekiq process serving ``queues``."""
        argv = ["sidekiq", "-r", str(self.dir / "jobs.rb"), "-c", str(concurrency), "-g", tag]
        for queue in queues:
            argv += ["-q", queue]
        log = open(self.host_dir / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen(self._argv(argv), env=self.env, stdout=log,
                                  stderr=subprocess.STDOUT)
        log.close()
        self.workers.append(worker)
        return worker

    def log_tail(self) -> str:
        """Return the end of every worker's log, for failure messages."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.host_dir.glob("worker-*.log"))
        )

    def stop(self) -> None:
        """Stop every worker still running and remove the copied files."""
        for worker in self.workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        shutil.rmtree(self.host_dir, ignore_errors=True)


def host_sidekiq_version() -> str | None:
    """Return the version of Debian's ruby-sidekiq installed on this host, if any."""
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "ruby-sidekiq"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def sidekiq_root(major: int) -> tuple[Path | None, str | None]:
    """Return where Sidekiq ``major`` runs (None: on the host) and why it cannot, if so."""
    version = host_sidekiq_version()
    if version is not None and version.startswith(f"{major}."):
        return None, None
    if major == 6:
        return None, f"Sidekiq 6 is Debian 12's ruby-sidekiq; this host has {version}"
    return SIDEKIQ7_ROOT, sidekiq7_available()


def sidekiq7_available() -> str | None:
    """Return why the Sidekiq 7 chroot cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the Sidekiq 7 chroot needs root"
    if not (SIDEKIQ7_ROOT / "usr/bin/sidekiq").exists():
        return f"no Sidekiq 7 chroot at {SIDEKIQ7_ROOT} (run scripts/sidekiq7-chroot.sh)"
    return None


def postgres_bin() -> Path | None:
    """Return the newest installed PostgreSQL server's bin directory (Debian's layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


class PostgresServer:
    """A throwaway PostgreSQL on a free loopback port, run as the ``postgres`` user.

    initdb in a temporary directory owned by ``postgres`` (the tests run as root,
    which PostgreSQL refuses), trust authentication for the superuser on loopback
    only through the socket in the data directory, password (scram) on TCP.
    """

    def __init__(self, workdir: Path, max_connections: int = 30,
                 start_timeout: float = 20.0) -> None:
        import pwd

        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server installed")
        self.bindir = bindir
        self.port = free_port()
        self.user = pwd.getpwnam("postgres")
        self.data = Path(tempfile.mkdtemp(prefix="statusbot-pg-"))
        os.chown(self.data, self.user.pw_uid, self.user.pw_gid)
        self.log = workdir / f"postgres-{self.port}.log"
        self.log.touch()
        os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
        self._as_postgres([str(bindir / "initdb"), "-D", str(self.data / "db"), "-U", "postgres",
                           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                           "--no-sync"], timeout=60)
        self.process: subprocess.Popen[bytes] | None = None
        self.start(max_connections, start_timeout)

    def _as_postgres(self, argv: Sequence[str], timeout: float) -> None:
        subprocess.run(["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                        "--clear-groups", *argv], check=True, capture_output=True,
                       timeout=timeout, cwd=self.data)

    def start(self, max_connections: int = 30, start_timeout: float = 20.0) -> None:
        """Start (or restart) the server on the same port and data."""
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(
            ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
             "--clear-groups", str(self.bindir / "postgres"), "-D", str(self.data / "db"),
             "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
             "-c", f"unix_socket_directories={self.data}", "-c", "fsync=off",
             "-c", f"max_connections={max_connections}"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.data)
        log.close()
        try:
            wait_for(self._ready, start_timeout, f"postgres on port {self.port}")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"postgres exited: {self.log.read_text()[-2000:]}")
        return (self.data / f".s.PGSQL.{self.port}").exists() and self._accepts()

    def _accepts(self) -> bool:
        try:
            self.admin().close()
        except Exception:  # still starting
            return False
        return True

    def admin(self, **kwargs: Any) -> Any:
        """Return a superuser connection through the socket (the test's own, autocommit)."""
        import psycopg

        return psycopg.connect(host=str(self.data), port=self.port, user="postgres",
                               dbname="postgres", autocommit=True, **kwargs)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and wait for it."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def remove(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.data, ignore_errors=True)
