# Faster R-CNN R50-FPN, COCO, 1x: the dense baseline (the paper's Baseline row).
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
# checkpoints as plain data (safe to load with weights_only=True), written atomically
custom_hooks = [dict(type='SafeCheckpointHook')]
