# statusbot: a Mastodon bot that watches its own instance's health.
# Build: docker build -t statusbot .
# Run:   docker run --rm --network host \
#          -v /etc/statusbot/config.toml:/etc/statusbot/config.toml:ro statusbot
# Python 3.11, as Debian 12 ships it: the bot holds ~2.2 MB less there than on
# 3.12 (48.4 against 50.6 MB, flat over a 30-minute soak at -OO; bench/RESULTS.md).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/statusbot \
        --create-home --shell /usr/sbin/nologin statusbot \
    && mkdir -p /etc/statusbot

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY bot ./bot
# The bot runs with PYTHONOPTIMIZE=2, which keeps docstrings out of memory:
# ~2.5 MB less RSS (redis-py and Mastodon.py document every call; see
# bench/RESULTS.md). Its bytecode is compiled here, once, for that level.
# psycopg (the advice's database connections) is imported only when a database
# is configured, and only in the thread that reads it.
RUN pip install '.[chart,postgres]' && rm -rf /src \
    && python -OO -m compileall -q -j 0 "$(python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
        "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

ENV PYTHONOPTIMIZE=2
WORKDIR /var/lib/statusbot
USER statusbot
VOLUME ["/var/lib/statusbot"]

# Unhealthy when the loop has not completed a tick for three intervals plus a minute.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=2 \
    CMD ["statusbot", "healthcheck", "--config", "/etc/statusbot/config.toml"]

# Mount the configuration here (see config.toml.example).
ENTRYPOINT ["statusbot"]
CMD ["run", "--config", "/etc/statusbot/config.toml"]
