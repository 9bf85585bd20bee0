# mammocad API and workers: `docker compose --profile app up -d` (docker-compose.yml).
FROM python:3.11-slim

# libglib2.0-0: OpenCV (through albumentations) loads it even in its headless build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir ".[ml,celery]"

# uploads, pictures and stage hand-offs; every API and worker container mounts the same volume
ENV MAMMOCAD_DATA_DIR=/data \
    MAMMOCAD_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 8000
CMD ["mammocad", "serve"]
