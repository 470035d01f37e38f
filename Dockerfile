# tunegate: one image for `tunegate serve`, `tunegate worker` and `tunegate sandbox-upstream`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
RUN pip install . \
    && useradd --create-home --uid 10001 tunegate \
    && mkdir -p /data \
    && chown tunegate:tunegate /data

USER tunegate
ENV TUNEGATE_HOST=0.0.0.0 \
    TUNEGATE_PORT=8080 \
    TUNEGATE_DATA_DIR=/data \
    TUNEGATE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('TUNEGATE_PORT', '8080')}/health\", timeout=2)"]

ENTRYPOINT ["tunegate"]
CMD ["serve"]
