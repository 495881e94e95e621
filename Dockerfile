# zen-watcher: multi-stage build. The first stage builds wheels for the package and its
# dependencies; the final stage installs only those wheels (no compiler, no pip cache) and runs
# as a non-root numeric user, so `runAsNonRoot` and a read-only root filesystem work.
FROM python:3.11-slim-bookworm AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY zenwatcher ./zenwatcher
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=wheels /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels "zen-watcher==0.1.0" \
    && rm -rf /wheels
USER 65532:65532
# 8080: webhooks (WATCHER_PORT); 9090: /metrics, /healthz, /readyz (METRICS_PORT).
EXPOSE 8080 9090
ENTRYPOINT ["zen-watcher"]
CMD ["run"]
