#!/usr/bin/env bash
# GPU smoke test of the converter's TensorRT path (FP16 and INT8).
#
# STATUS: the TF-TRT path (FP32/FP16/INT8) is verified ONLY where this script has been
# run successfully. Nobody has run it yet: CI has no GPU and tests the converter on
# tensorflow-cpu, where FP32/FP16/INT8 end with exit code 30 (TensorRTUnavailable) by
# design. Record each run (GPU, driver, image digest, date, the two reports) in
# docs/converter.md ("GPU verification log").
#
# What it does, inside the converter image on a GPU node:
#   1. builds a small conv classifier SavedModel and INT8 calibration data (.npz),
#   2. runs `trt-convert` in FP16 (two build shapes) and in INT8 (with calibration),
#   3. prints both JSON reports, reloads each converted model on the GPU, checks that it
#      contains TRTEngineOps and serialized engines, and exits non-zero otherwise.
#
# Run it with the converter image on the GPU model you serve on (engines are specific to
# the GPU model and the TensorRT version):
#
#   docker run --rm --gpus all -i trtserve/converter:0.1.0 bash -s < scripts/gpu-smoke.sh
#
#   kubectl run trt-smoke --rm -i --restart=Never --image=trtserve/converter:0.1.0 \
#     --overrides='{"spec":{"containers":[{"name":"trt-smoke","image":"trtserve/converter:0.1.0",
#       "stdin":true,"command":["bash","-s"],"resources":{"limits":{"nvidia.com/gpu":"1"}}}]}}' \
#     < scripts/gpu-smoke.sh
#
# Environment: WORK (scratch dir, default: a new temp dir), INT8_RTOL / INT8_ATOL
# (INT8 accuracy tolerances, default 0.1 / 0.05; FP16 uses the converter's defaults),
# PYTHON (default python3), TRT_CONVERT (default trt-convert).
set -euo pipefail

PYTHON=${PYTHON:-python3}
TRT_CONVERT=${TRT_CONVERT:-trt-convert}
WORK=${WORK:-$(mktemp -d -t trt-smoke-XXXXXX)}
INT8_RTOL=${INT8_RTOL:-0.1}
INT8_ATOL=${INT8_ATOL:-0.05}

command -v "$TRT_CONVERT" >/dev/null || { echo "error: $TRT_CONVERT not on PATH" >&2; exit 2; }
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -L
else
  echo "warning: nvidia-smi not found; TensorFlow will report whether it sees a GPU" >&2
fi
echo "scratch directory: $WORK"
mkdir -p "$WORK"

echo "== making the test model and calibration data"
"$PYTHON" - "$WORK" <<'PY'
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

work = Path(sys.argv[1])
rng = np.random.default_rng(0)


class Classifier(tf.Module):
    """Three conv blocks and a dense head: enough nodes for TF-TRT segments."""

    def __init__(self):
        super().__init__()
        self.kernels = [
            tf.Variable(rng.standard_normal((3, 3, cin, cout)).astype(np.float32) * 0.2)
            for cin, cout in ((3, 16), (16, 32), (32, 32))
        ]
        self.dense = tf.Variable(rng.standard_normal((32, 10)).astype(np.float32) * 0.2)

    @tf.function(
        input_signature=[tf.TensorSpec([None, 64, 64, 3], tf.float32, name="images")],
        autograph=False,  # the source comes from stdin: nothing for AutoGraph to read
    )
    def serve(self, images):
        x = images
        for kernel in self.kernels:
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))
            x = tf.nn.max_pool2d(x, 2, 2, "VALID")
        logits = tf.matmul(tf.reduce_mean(x, axis=[1, 2]), self.dense)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}


model = Classifier()
tf.saved_model.save(model, str(work / "model"), signatures={"serving_default": model.serve})
np.savez(work / "calibration.npz", images=rng.uniform(0, 1, (64, 64, 64, 3)).astype(np.float32))
print("GPUs visible to TensorFlow:", tf.config.list_physical_devices("GPU"))
PY

status=0
run_convert() {
  local name=$1
  shift
  echo "== trt-convert $name"
  set +e
  "$TRT_CONVERT" --source "$WORK/model" --output-base "$WORK/models" --model-name "smoke-$name" \
    --report-path "$WORK/$name.json" --log-level INFO "$@"
  local code=$?
  set -e
  echo "== $name: exit code $code; report:"
  "$PYTHON" -m json.tool "$WORK/$name.json" || true
  if [ "$code" -ne 0 ]; then
    status=1
  fi
}

run_convert fp16 --precision FP16 \
  --build-shape images=1x64x64x3 --build-shape images=8x64x64x3
run_convert int8 --precision INT8 --calibration-source "$WORK/calibration.npz" \
  --calibration-batch-size 8 --calibration-batches 8 \
  --accuracy-rtol "$INT8_RTOL" --accuracy-atol "$INT8_ATOL" \
  --build-shape images=1x64x64x3 --build-shape images=8x64x64x3

echo "== reloading the converted models on the GPU"
"$PYTHON" - "$WORK" <<'PY' || status=1
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

work = Path(sys.argv[1])
failed = False
for name in ("fp16", "int8"):
    report = json.loads((work / f"{name}.json").read_text())
    version = work / "models" / f"smoke-{name}" / "1"
    if report["result"] != "Succeeded" or not version.is_dir():
        print(f"{name}: FAILED ({report['reason']}): {report['message']}")
        failed = True
        continue
    serve = tf.saved_model.load(str(version)).signatures["serving_default"]
    graph = serve.graph.as_graph_def()
    ops = [n.op for n in graph.node] + [n.op for f in graph.library.function for n in f.node_def]
    engines = sorted(p.name for p in (version / "assets").glob("trt-serialized-engine.*"))
    out = serve(images=tf.constant(np.zeros((8, 64, 64, 3), np.float32)))
    print(
        f"{name}: {ops.count('TRTEngineOp')} TRTEngineOps in the saved graph, "
        f"{len(engines)} serialized engines, output {out['probabilities'].shape}, "
        f"report: {report['trtEngineOps']} TRTEngineOps, {report['enginesBuilt']} engines, "
        f"GPU {report.get('gpu')}, TensorRT linked {report.get('tensorrtLinked')} "
        f"loaded {report.get('tensorrtLoaded')}, accuracy {report.get('accuracy')}"
    )
    if ops.count("TRTEngineOp") == 0 or not engines:
        print(f"{name}: FAILED: no TensorRT engines in the converted model")
        failed = True
sys.exit(1 if failed else 0)
PY

if [ "$status" -eq 0 ]; then
  echo "GPU SMOKE PASSED: FP16 and INT8 converted with pre-built TensorRT engines"
else
  echo "GPU SMOKE FAILED (see above); scratch directory kept: $WORK" >&2
fi
exit "$status"
