#!/usr/bin/env bash
# The recipe run on a lent GPU (Keras 3 on JAX; TensorFlow is absent there). Export happens back on a CPU
# machine with TensorFlow: python -m training.gpu.pack unweights ... && python -m training export ...
# Carried: .whl (keras + namex + optree wheels for Python 3.12), .gpudata/fer2013.npz.xz (decoded FER2013 train +
# val) and, to fine-tune, .gpuinit (a classifier's float16 parts): training/gpu/stage.sh out makes them.
#
# One ResNet50 step at 48x48 keeps an H100 mostly idle (the step is bound by dispatch, not arithmetic), so the
# recipe trains several runs (network size, peak rate) side by side on the one GPU, each with the same time budget, and
# ships the run with the best validation accuracy. Measured (README, docs/runs/fer2013-h100-64): sizes 48 / 64 / 80
# at 1e-3 for 7 minutes gave 38.9 / 59.5 / 58.5 % on val; at 5e-4 the 80 px run reached 57.6 % in half the epochs.
# Usage: OUT=dir BUDGET=minutes [RUNS="64:5e-4 64:3e-4 80:4e-4"] [MIXUP=alpha] [EMA=momentum] [ZERO_INIT=1] \
#        [HARD_STOP=seconds] \
#        training/gpu/h100.sh
#        each run is NETWORK_SIZE:PEAK_LEARNING_RATE, or NETWORK_SIZE:PEAK_LEARNING_RATE:init to fine-tune the
#        classifier carried in .gpuinit (one warm-up epoch); SIZES="64 80" with one LR=... is the same with one rate.
#        STAGE=data only installs the wheels and unpacks the data, for a first call: data and weights together pass
#        the 64 MiB a call carries, so a fine-tune carries .gpuinit in a second call on the still-warm machine.
#        WORK=dir (default /tmp) holds the wheels, the data and the runs between calls.
#        EMA=0.999 validates and keeps an exponential moving average of the weights (what made version 5 on CPU).
set -uo pipefail
WORK=${WORK:-/tmp}; mkdir -p "$WORK" || exit 1
[ -n "${SKIP_PIP:-}" ] || [ -d "$WORK/site/keras" ] || python3 -m pip install -q --no-index --no-deps --no-compile \
  --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl || exit 1
export PYTHONPATH="$WORK/site" KERAS_BACKEND=jax TRAINING_QUIET=1 PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several processes share the GPU: memory as needed, not 75 % each
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
DATA_XZ=${DATA_XZ:-.gpudata/fer2013.npz.xz}
if [ ! -f "$WORK/fer2013.npz" ]; then  # a warm machine keeps it from the call before
  [ -f "$DATA_XZ" ] || { echo "no data: carry .gpudata (a fresh machine)"; exit 3; }
  python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('$DATA_XZ'), open('$WORK/fer2013.npz.part','wb'))" \
    && mv "$WORK/fer2013.npz.part" "$WORK/fer2013.npz" || exit 1
fi
[ "${STAGE:-}" = data ] && { echo "wheels and data ready in $WORK"; exit 0; }
COMMON=(--data "$WORK/fer2013.npz" --batch-size "${BATCH:-128}" --weight-decay 0.05
        --warmup-epochs "${WARMUP:-3}" --augmentation "${AUGMENT:-light}" --label-smoothing 0.1 --dropout 0.3
        --patience 1000 --no-export --epochs "${EPOCHS:-150}" --time-budget "${BUDGET:-7}"
        ${MIXUP:+--mixup "$MIXUP"} ${EMA:+--ema-momentum "$EMA"})
if [ -n "${SIZES:-}" ]; then RUNS=""; for size in $SIZES; do RUNS="$RUNS $size:${LR:-5e-4}"; done; fi
RUNS=${RUNS:-64:5e-4 64:3e-4 80:4e-4}
if [[ " $RUNS" == *:init* ]]; then  # before any run starts: the classifier the fine-tunes start from
  [ -d .gpuinit ] || { echo "a run says :init and no .gpuinit was carried"; exit 3; }
  rm -rf "$WORK/init" && python3 -m training.gpu.pack unweights .gpuinit "$WORK/init" || exit 1
fi
runs=()
for spec in $RUNS; do
  IFS=: read -r size rate start <<< "$spec"; run="$WORK/run${size}_$rate${start:+_$start}"
  rm -rf "$run"  # a machine kept warm between calls still holds the last call's runs
  # how the run starts: from scratch (ZERO_INIT=1: each residual block as the identity) or from the carried weights
  start_options=()
  [ -z "${ZERO_INIT:-}" ] || start_options=(--zero-init-residual)
  [ "$start" != init ] || start_options=(--init-weights "$WORK/init/classifier.weights.h5" --warmup-epochs 1)
  # a run that overruns its budget is stopped so the others still get packed
  timeout "${HARD_STOP:-560}" python3 -m training train "${COMMON[@]}" --network-size "$size" --learning-rate "$rate" \
    "${start_options[@]}" --work-dir "$run" > "$run.log" 2>&1 &
  runs+=("$run")
done
wait
for run in "${runs[@]}"; do
  echo "== $run"; grep -v -E "^\s*$|Epoch [0-9]+/" "$run.log" | tail -n 4
  [ -f "$run/log.csv" ] && cut -d, -f1-6 "$run/log.csv" | tr -d '\r' | tail -n 80
done | tee "$OUT/runs.txt"
python3 -m training.gpu.pack best "$OUT" "${runs[@]}"
