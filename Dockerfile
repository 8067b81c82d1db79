# botctl in a container: the same install as ./install.sh, run as a non-root user, with the
# configs and the database on volumes.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 botctl
WORKDIR /opt/botctl
COPY --chown=botctl:botctl . .
USER botctl
RUN ./install.sh

ENV PATH="/opt/botctl/.venv/bin:${PATH}" \
    BOTCTL_CONFIG_DIR=/config \
    BOTCTL_DB=/data/botctl.db
VOLUME ["/config", "/data"]

# status exits 1 when the bot should be running but its heartbeat is stale.
HEALTHCHECK --interval=60s --timeout=10s --start-period=60s CMD ["botctl", "status"]

ENTRYPOINT ["botctl"]
CMD ["run"]
