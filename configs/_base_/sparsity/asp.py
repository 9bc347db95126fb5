# ASP (NVIDIA's recipe), 2:4: the backbone trains (or loads) dense, the N:M magnitude mask
# is computed once at `ti` and kept fixed; masked weights stay exactly zero.
# With ti=0 and ImageNet (or `load_from`) weights this is ASP's one-shot prune + fine-tune.
custom_imports = dict(imports=['lbc_mmdet'], allow_failed_imports=False)
nm_conv_cfg = dict(type='ASPConv2d', n=2, m=4)
custom_hooks = [dict(type='NMSparsityHook', ti=0, tf=None), dict(type='RNGStateHook'),
                dict(type='TrainFlopsHook'), dict(type='SafeCheckpointHook')]
# Option: permute input channels before the prune (more |w| kept; the dense function is
# unchanged; docs/deployment.md "Channel permutation"). From dense `load_from` weights, add
#     dict(type='ChannelPermutationHook', time_limit=10.0),
# to the list above (its priority runs it before NMSparsityHook prunes; a child config
# repeats the whole list: configs/demo/faster_rcnn_r50_fpn_asp_2of4_permute_demo.py).
