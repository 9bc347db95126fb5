# R50-FPN Faster R-CNN shrunk for a 2-core CPU at 128 px (measured step times: README), trained
# from scratch (no ImageNet weights can be downloaded here).
#
# A *component* base like mmdet's ``_base_/models/*.py``: mmengine forbids two
# sibling bases defining the same key, so the overrides are chained onto the
# stock model instead of being listed next to a full mmdet config.
_base_ = 'mmdet::_base_/models/faster-rcnn_r50_fpn.py'

num_classes = 3

model = dict(
    backbone=dict(
        # from scratch: no pretrained weights, train every stage and every BN
        init_cfg=None,
        frozen_stages=-1,
        norm_eval=False),
    roi_head=dict(bbox_head=dict(num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(max_per_img=50)))
