# The ecgmon worker and simulator image (docker-compose.yml builds it as ecgmon:0.1.0).
# PyPI's default torch wheel for Linux x86_64 carries CUDA, so the same image runs on an NVIDIA GPU
# (deploy/compose.gpu.yml) and falls back to CPU without one (ECGMON_DEVICE=auto).
FROM python:3.11.13-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ECGMON_STATE_DIR=/var/lib/ecgmon \
    MPLCONFIGDIR=/tmp/matplotlib

# The worker keeps Faust's table state and its readiness file under ECGMON_STATE_DIR (per container: replicas must not share it).
RUN groupadd --system ecgmon && useradd --system --gid ecgmon --home-dir /app --shell /usr/sbin/nologin ecgmon \
    && mkdir -p /var/lib/ecgmon && chown ecgmon:ecgmon /var/lib/ecgmon
WORKDIR /app

COPY pyproject.toml README.md ./
COPY ecgmon ./ecgmon
COPY models ./models
COPY streams ./streams
COPY simulators ./simulators
COPY dashboards ./dashboards
RUN pip install "torch==2.13.0" && pip install . && rm -rf /root/.cache

USER ecgmon
# The worker's Faust web server stays off (ECGMON_WORKER_WEB=false); nothing listens in this image.
CMD ["ecgmon", "worker"]
