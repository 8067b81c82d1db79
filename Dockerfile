# botctl in a container: the same install as ./install.sh (dependencies pinned by
# constraints.txt), run as a non-root user, with the configs and the database on volumes.
# The base image is pinned by digest: python:3.11.16-slim-bookworm (amd64/arm64 index). To
# move it: docker pull python:3.11-slim-bookworm && docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim-bookworm
FROM python:3.11.16-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b

RUN useradd --create-home --uid 10001 botctl
WORKDIR /opt/botctl
COPY --chown=botctl:botctl . .
USER botctl
RUN ./install.sh

ENV PATH="/opt/botctl/.venv/bin:${PATH}" \
    BOTCTL_CONFIG_DIR=/config \
    BOTCTL_DB=/data/botctl.db \
    BOTCTL_CACHE_DIR=/data/data-cache
VOLUME ["/config", "/data"]

# status exits 1 when the bot should be running but its heartbeat is stale.
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s CMD ["botctl", "status"]

ENTRYPOINT ["botctl"]
CMD ["run"]
