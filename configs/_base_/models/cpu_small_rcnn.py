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
        # RoI sampling sized for 128 px images (~2.5 objects each): 32 RoIs per image, up
        # to half of them positive -- the same 16 positives as mmdet's 512 x 0.25 allows
        # at most here, half the negatives. RoIAlign's CPU backward and the 12.8 M-weight
        # fc of the box head scale with the sampled RoIs: they were ~45 % of a step with 64
        # (docs/performance.md, "Where the demo's time goes").
        rcnn=dict(sampler=dict(num=32, pos_fraction=0.5))),
    test_cfg=dict(
        rpn=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(max_per_img=50)))
