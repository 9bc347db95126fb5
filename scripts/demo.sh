#!/usr/bin/env bash
# The main job: install everything into ./.venv, generate the bundled dataset, train
# LBC 2:4 Faster R-CNN R50-FPN on it, evaluate COCO bbox mAP (with a bootstrap interval over
# the validation images) and print where the results are. Measured time and mAP: README,
# "Quick start". Any extra arguments go to tools/train.py.
#
#   bash scripts/demo.sh
#   CONFIG=configs/demo/faster_rcnn_r50_fpn_dense_demo.py bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
job_start=$(date +%s)
bash scripts/setup.sh
CONFIG=${CONFIG:-configs/demo/faster_rcnn_r50_fpn_lbc_2of4_demo.py}
WORK_DIR=${WORK_DIR:-work_dirs/$(basename "$CONFIG" .py)}
.venv/bin/python tools/make_demo_data.py --out data/demo_coco
start=$(date +%s)
.venv/bin/python tools/train.py "$CONFIG" --work-dir "$WORK_DIR" \
    --cfg-options val_evaluator.outfile_prefix="$WORK_DIR/predictions/val" "$@"
end=$(date +%s)
echo "[demo] trained and evaluated in $(( end - start )) s"
.venv/bin/python - "$WORK_DIR" <<'PY'
import glob, json, os, sys
work_dir = sys.argv[1]
scalars = sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json')))
metrics, times = {}, []
for path in scalars[-1:]:
    for line in open(path):
        rec = json.loads(line)
        metrics.update({k: v for k, v in rec.items() if k.startswith('coco/')})
        if 'time' in rec and 'loss' in rec:
            times.append(rec['time'])
for k in sorted(metrics):
    print(f'[demo] {k}: {metrics[k]}')
if times:
    print(f'[demo] seconds per iteration (logged windows): first {times[0]:.2f}, '
          f'last {times[-1]:.2f}, mean {sum(times) / len(times):.2f}')
prefix = os.path.join(work_dir, 'predictions', 'val')
ann = 'data/demo_coco/annotations/instances_val.json'
if os.path.isfile(prefix + '.bbox.json') and os.path.isfile(ann):
    from lbc_mmdet.suite.bootstrap import bootstrap_run
    for metric, b in bootstrap_run(ann, prefix).items():
        print(f'[demo] {metric}: {b["full"]:.3f}, 95 % bootstrap interval over the validation '
              f'images [{b["low"]:.3f}, {b["high"]:.3f}] ({b["replicates"]} replicates)')
print(f'[demo] checkpoints and logs: {work_dir}')
PY
echo "[demo] main job done in $(( $(date +%s) - job_start )) s (setup, data, training, evaluation)"
