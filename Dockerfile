# tunegate: one image for `tunegate serve`, `tunegate worker` and `tunegate sandbox-upstream`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 tunegate \
    && mkdir -p /data \
    && chown tunegate:tunegate /data

WORKDIR /app
# Dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY README.md ./
COPY service ./service
COPY workers ./workers
RUN pip install --no-deps .

USER tunegate
ENV TUNEGATE_HOST=0.0.0.0 \
    TUNEGATE_PORT=8080 \
    TUNEGATE_DATA_DIR=/data \
    TUNEGATE_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080

# Checks whichever role the container runs (serve, worker or sandbox-upstream).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["tunegate", "health"]

ENTRYPOINT ["tunegate"]
CMD ["serve"]
