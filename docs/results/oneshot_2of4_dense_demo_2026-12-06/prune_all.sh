#!/usr/bin/env bash
# one-shot pruning of the dense demo detector: 3 criteria x 3 calibration seeds, 2:4; then
# evaluation (no fine-tune) with predictions kept for the bootstrap
set -u
cd .
CFG=configs/demo/faster_rcnn_r50_fpn_dense_demo.py
CK=work_dirs/faster_rcnn_r50_fpn_dense_demo/iter_400.pth
OUT=work_dirs/prune_demo
mkdir -p $OUT
for S in 0 1 2; do for M in magnitude wanda sparsegpt; do
  t0=$(date +%s)
  .venv/bin/python tools/prune.py $CFG $CK --method $M --n 2 --m 4 --calib-batches 8 --seed $S --out $OUT/${M}_2of4_s$S.pth > $OUT/${M}_2of4_s$S.prune.log 2>&1
  t1=$(date +%s)
  .venv/bin/python tools/test.py $CFG $OUT/${M}_2of4_s$S.pth --work-dir $OUT/test_${M}_s$S --cfg-options test_evaluator.outfile_prefix=$OUT/test_${M}_s$S/pred > $OUT/${M}_2of4_s$S.test.log 2>&1
  t2=$(date +%s)
  echo "$M seed $S prune $((t1-t0)) s test $((t2-t1)) s $(grep -o 'coco/bbox_mAP: [0-9.]*' $OUT/${M}_2of4_s$S.test.log | tail -1)"
done; done
