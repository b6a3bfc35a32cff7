# Emotion recognition service. CPU by default; `--build-arg TF_EXTRA=gpu` installs CUDA-enabled TensorFlow.
# CI builds it on a locally made base: `--build-arg BASE_IMAGE=<local python 3.11 image>`.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG TF_EXTRA=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, from the pinned lock, so code changes reuse this layer.
COPY requirements/ /tmp/requirements/
RUN pip install -r /tmp/requirements/${TF_EXTRA}.txt
COPY pyproject.toml README.md /src/
COPY app /src/app
COPY training /src/training
RUN pip install --no-deps /src && find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    WORKERS=1 \
    EMOTION_MODEL_DIR=/models/emotion \
    TF_CPP_MIN_LOG_LEVEL=2 \
    MALLOC_ARENA_MAX=2
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --chown=app:app model/ /models/
WORKDIR /home/app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ['PORT']}/readyz\", timeout=2)"]
CMD ["sh", "-c", "exec uvicorn app.main:app --host \"$HOST\" --port \"$PORT\" --workers \"$WORKERS\""]
