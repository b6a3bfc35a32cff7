#!/usr/bin/env bash
# Ready this checkout for the device tool, and put it back afterwards.
#
# The device tool sends the working tree (tracked files and untracked ones git does not ignore) plus the paths a
# call carries, 64 MiB a call. The shipped model versions are ~115 MB each, so they wait outside the checkout
# while the GPU calls run; the data (~56 MiB) and a classifier to fine-tune (~47 MiB) go in separate calls.
#
#   training/gpu/stage.sh out [INIT]   # wheels (.whl), data (.gpudata), INIT's weights (.gpuinit, optional: a run
#                                      # folder or an exported version, model/emotion/4), model versions moved
#                                      # aside; prints the sizes
#   training/gpu/stage.sh back         # the model versions back where git expects them, checked
#
# ASIDE (default ~/.cache/emotion-training/model-aside) is where the versions wait; PY the Python with TensorFlow.
set -euo pipefail
cd "$(dirname "$0")/../.."
ASIDE=${ASIDE:-$HOME/.cache/emotion-training/model-aside}
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/fer2013}
LIMIT=$((64 * 1024 * 1024))

mib() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {printf "%.1f", s / 1048576}'; }

case "${1:-}" in
out)
  for path in /.whl/ /.gpudata/ /.gpuinit/; do
    grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude
  done
  if ! ls .whl/keras-*.whl > /dev/null 2>&1; then
    keras_version=$("$PY" -c "import keras; print(keras.__version__)")
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "keras==$keras_version" namex optree
  fi
  [ -f .gpudata/fer2013.npz.xz ] || "$PY" -m training.gpu.pack arrays "$DATA" .gpudata/fer2013.npz.xz
  if [ -n "${2:-}" ]; then
    rm -rf .gpuinit
    "$PY" -m training.gpu.pack weights "$2" .gpuinit
  fi
  if [ -n "$(git ls-files model/emotion)" ] && [ -n "$(ls model/emotion 2>/dev/null)" ]; then
    [ ! -e "$ASIDE" ] || { echo "$ASIDE exists: run '$0 back' first"; exit 2; }
    mkdir -p "$ASIDE"
    mv model/emotion/* "$ASIDE"/
    echo "model versions moved to $ASIDE (put them back with: $0 back)"
  fi
  # what is on disk of what git tracks or would (the versions aside are tracked but absent)
  tree=$( (git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null || true) \
    | tail -n 1 | cut -f1)
  echo "working tree that travels: $(awk "BEGIN {printf \"%.1f\", $tree / 1048576}") MiB"
  echo "call 1 carries .whl .gpudata: $(mib .whl .gpudata) MiB more"
  [ ! -d .gpuinit ] || echo "call 2 carries .gpuinit: $(mib .gpuinit) MiB more"
  for carried in ".whl .gpudata" ".gpuinit"; do
    # shellcheck disable=SC2086  # two paths
    total=$((tree + $(du -sbc $carried 2>/dev/null | tail -n 1 | cut -f1)))
    [ "$total" -le "$LIMIT" ] || { echo "over the device tool's 64 MiB with $carried: $total bytes"; exit 1; }
  done
  ;;
back)
  [ -d "$ASIDE" ] || { echo "nothing aside in $ASIDE"; exit 0; }
  mkdir -p model/emotion
  mv "$ASIDE"/* model/emotion/
  rmdir "$ASIDE"
  if [ -n "$(git status --porcelain -- model)" ]; then
    git status --short -- model
    echo "model/ differs from git after putting the versions back"
    exit 1
  fi
  echo "model versions back in model/emotion"
  ;;
*)
  echo "usage: $0 out [INIT_RUN_DIR] | back"
  exit 2
  ;;
esac
