#!/usr/bin/env bash
# The recipe run on a lent GPU (Keras 3 on JAX; TensorFlow is absent there). Export happens back on a CPU
# machine with TensorFlow: python -m training.gpu.pack unweights ... && python -m training export ...
# Carried: .whl (keras + namex + optree wheels for Python 3.12, see the device README), .gpudata/fer2013.npz.xz
# (decoded FER2013 train + val: python -m training.gpu.pack arrays ../shared/data/fer2013 .gpudata/fer2013.npz.xz).
# Usage: OUT=dir BUDGET_A=min BUDGET_B=min training/gpu/h100.sh
set -euo pipefail
[ -n "${SKIP_PIP:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax TRAINING_QUIET=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import lzma,shutil; shutil.copyfileobj(lzma.open('${DATA_XZ:-.gpudata/fer2013.npz.xz}'), open('/tmp/fer2013.npz','wb'))"
COMMON=(--data /tmp/fer2013.npz --batch-size "${BATCH:-128}" --learning-rate "${LR:-1e-3}" --weight-decay 0.05
        --warmup-epochs 3 --augmentation "${AUGMENT:-light}" --label-smoothing 0.1 --dropout 0.3 --patience 1000 --no-export --epochs "${EPOCHS:-150}")
python3 -m training train "${COMMON[@]}" --work-dir /tmp/runA --time-budget "${BUDGET_A:-3.5}" 2>&1 | tee /tmp/train_a.log
python3 - <<'PY'
import json; r = json.load(open("/tmp/runA/run.json")); print("A", r["validation"]["accuracy"], r["images_per_second"])
PY
python3 -m training.gpu.pack weights /tmp/runA "$OUT"
cp /tmp/runA/run.json "$OUT/run.json"; cp /tmp/runA/log.csv "$OUT/log.csv"
if python3 -c "import json,sys; sys.exit(json.load(open('/tmp/runA/run.json'))['validation']['accuracy'] < ${ACCEPT:-0.665})"; then
  echo "A is good enough: done"; exit 0
fi
[ "${BUDGET_B:-0}" = 0 ] && exit 0
python3 -m training train "${COMMON[@]}" --work-dir /tmp/runB --network-size "${NET_B:-80}" --time-budget "$BUDGET_B" 2>&1 | tee /tmp/train_b.log
python3 - <<'PY'
import json, shutil, subprocess, os
a, b = (json.load(open(f"/tmp/run{k}/run.json"))["validation"]["accuracy"] for k in "AB")
print("A", a, "B", b)
if b > a:
    out = os.environ["OUT"]
    for f in os.listdir(out):
        if f.startswith("weights_part"): os.remove(os.path.join(out, f))
    subprocess.run(["python3", "-m", "training.gpu.pack", "weights", "/tmp/runB", out], check=True)
    shutil.copy("/tmp/runB/run.json", f"{out}/run.json"); shutil.copy("/tmp/runB/log.csv", f"{out}/log.csv")
    print("shipping B")
PY
