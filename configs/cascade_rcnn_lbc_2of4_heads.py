# Layers built without a cfg (RoI-head fully connected layers, RPN convs) are made sparse
# by module-name patterns: `NMSparsify` builds the detector, then converts every matching
# nn.Conv2d / nn.Linear, reusing its parameters (state_dict keys stay those of the dense
# model). Cascade R-CNN R50-FPN, COCO, 1x: LBC 2:4 on the backbone (stem left dense, as it
# cannot be grouped) and on the shared fcs of the three box heads.
_base_ = ['mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py', './_base_/sparsity/lbc.py']
model = dict(
    _delete_=True,
    type='NMSparsify',
    model={{_base_.model}},
    layer=dict(method='lbc', n=2, m=4),
    include=['backbone.*', 'roi_head.bbox_head.*.shared_fcs.*'])
