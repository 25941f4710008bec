"""Collectors: the edge of the bot that reads Redis and the host, producing a ``Snapshot``."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from bot.collect.agents import AgentReader
from bot.collect.host import HostReader
from bot.collect.node_exporter import ExporterReader
from bot.collect.sidekiq import SidekiqReader
from bot.config import Config, RedisConfig
from bot.model import HostReading, Snapshot


def redis_client(config: RedisConfig) -> redis.Redis:
    """Return a redis-py client for ``config`` (decoding replies, with timeouts)."""
    password = config.password.reveal() if config.password is not None else None
    return redis.Redis.from_url(
        config.url,
        password=password,
        decode_responses=True,
        encoding_errors="replace",
        socket_timeout=config.socket_timeout,
        socket_connect_timeout=config.socket_timeout,
        health_check_interval=0,
    )


def merge_hosts(*readings: list[HostReading]) -> tuple[HostReading, ...]:
    """Return the other hosts' readings (exporters, agents) as one tuple, sorted by name."""
    return tuple(sorted((r for part in readings for r in part), key=lambda r: r.name))


class Collector:
    """Take whole snapshots (Sidekiq, Redis and host) with long-lived readers."""

    def __init__(
        self,
        config: Config,
        *,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client if client is not None else redis_client(config.redis)
        self._clock = clock
        self.agents = AgentReader(config.hosts, clock=clock)
        self.sidekiq = SidekiqReader(
            self._client,
            url=config.redis.url,
            namespace=config.redis.namespace,
            stale_after=config.sidekiq.stale_after,
            clock=clock,
            agents=self.agents,
        )
        self.host = HostReader(config.host.disk_paths)
        self.exporters = ExporterReader(config.hosts)

    def collect(self) -> Snapshot:
        """Take one snapshot; never raises.

        Redis trouble shows in ``snapshot.redis``, host trouble in ``snapshot.host_error``,
        an exporter's or an agent's in its ``HostReading.error`` (agents are read in the
        Sidekiq reader's round trips; none while Redis is down). The exporters are read while Redis
        and this host are: the snapshot waits at most the largest ``[[hosts]] timeout``.
        """
        # The exporters first: they are read while Redis and this host are, and the join
        # waits for none beyond its own timeout.
        exporters = self.exporters.start()
        host_error = None
        try:
            host = self.host.read()
        except Exception as exc:  # a host reading must never stop the bot
            host, host_error = None, f"{type(exc).__name__}: {exc}"
        # Sidekiq last, so that collected_at is the moment its latencies refer to.
        redis_stats, sidekiq_stats = self.sidekiq.read()
        collected_at = self._clock()
        exporter_hosts = exporters.join()
        return Snapshot(
            collected_at=collected_at,
            redis=redis_stats,
            sidekiq=sidekiq_stats,
            host=host,
            host_error=host_error,
            hosts=merge_hosts(exporter_hosts, list(self.agents.readings)),
            host_anomalies=self.agents.anomalies,
        )

    @property
    def client(self) -> redis.Redis:
        """The Redis client the readers share (read-only use only)."""
        return self._client

    def close(self) -> None:
        """Close the Redis connections."""
        self._client.close()
