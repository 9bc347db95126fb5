#!/usr/bin/env bash
# The main job: install everything into ./.venv, generate the bundled dataset, train
# LBC 2:4 Faster R-CNN R50-FPN on it (CPU: ~15 min), evaluate COCO bbox mAP and print
# where the results are. Any extra arguments go to tools/train.py.
#
#   bash scripts/demo.sh
#   CONFIG=configs/demo/faster_rcnn_r50_fpn_dense_demo.py bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
CONFIG=${CONFIG:-configs/demo/faster_rcnn_r50_fpn_lbc_2of4_demo.py}
WORK_DIR=${WORK_DIR:-work_dirs/$(basename "$CONFIG" .py)}
.venv/bin/python tools/make_demo_data.py --out data/demo_coco
start=$(date +%s)
.venv/bin/python tools/train.py "$CONFIG" --work-dir "$WORK_DIR" "$@"
echo "[demo] trained and evaluated in $(( $(date +%s) - start )) s"
.venv/bin/python - "$WORK_DIR" <<'PY'
import glob, json, os, sys
work_dir = sys.argv[1]
scalars = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
metrics = {}
for path in scalars[-1:]:
    for line in open(path):
        rec = json.loads(line)
        metrics.update({k: v for k, v in rec.items() if k.startswith('coco/')})
for k in sorted(metrics):
    print(f'[demo] {k}: {metrics[k]}')
print(f'[demo] checkpoints and logs: {work_dir}')
PY
