"""Helpers shared by test modules (not fixtures)."""
import contextlib
from typing import List


def data_cfg_options(root: str, with_classes: bool = False) -> List[str]:
    """``--cfg-options`` pointing every dataloader/evaluator at ``root``.

    Args:
        root: Dataset root made by ``make_demo_coco``.
        with_classes: Also set the 3 demo classes as metainfo (needed for
            stock mmdet configs, which default to the 80 COCO classes).

    Returns:
        ``key=value`` strings for ``--cfg-options``.
    """
    root = root.rstrip('/') + '/'
    opts = []
    for split, dl in (('train', 'train_dataloader'), ('val', 'val_dataloader'),
                      ('val', 'test_dataloader')):
        opts += [
            f'{dl}.dataset.data_root={root}',
            f'{dl}.dataset.ann_file=annotations/instances_{split}.json',
            f'{dl}.dataset.data_prefix.img=images/{split}/',
            f'{dl}.num_workers=0',
            f'{dl}.persistent_workers=False',
        ]
        if with_classes:
            opts.append(
                f'{dl}.dataset.metainfo.classes="(circle,square,triangle)"')
    for ev in ('val_evaluator', 'test_evaluator'):
        opts.append(f'{ev}.ann_file={root}annotations/instances_val.json')
    return opts


def _sparse_layers_table():
    from lbc_mmdet.layers import get_method, method_names
    return {name: dict(get_method(name).layers) for name in method_names()}


#: method -> {'Conv2d': class, 'Linear': class} of the methods registered by the package
SPARSE_LAYERS = _sparse_layers_table()


def scaled_optim_wrapper(model, kind: str, accum: int, iters: int, lr: float = 0.1,
                         init_scale: float = 2.0**14):
    """An MMEngine optimizer wrapper (SGD, momentum 0.9) over ``model`` for loss-scale and
    accumulation tests: ``kind='amp'`` an ``AmpOptimWrapper`` with a real, enabled CPU
    ``GradScaler`` whose scale doubles after every step (growth interval 1), ``'plain'``
    an ``OptimWrapper``; ``accum`` accumulation steps over a run of ``iters``."""
    import torch
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    if kind == 'amp':
        ow = AmpOptimWrapper(optimizer=opt, accumulative_counts=accum)
        ow.loss_scaler = torch.amp.GradScaler('cpu', init_scale=init_scale,
                                              growth_interval=1)
    else:
        ow = OptimWrapper(optimizer=opt, accumulative_counts=accum)
    ow.initialize_count_status(model, 0, iters)
    return ow


@contextlib.contextmanager
def fresh_mmlogger(tag: str):
    """Make a current MMLogger of this block's own and remove every MMLogger created in it
    on exit: an MMLogger keeps the stream of the test that created it, closed later."""
    import os

    from mmengine.logging import MMLogger
    before = set(MMLogger._instance_dict)
    MMLogger.get_instance(f'{tag}_{len(before)}_{os.getpid()}')
    try:
        yield
    finally:
        for name in set(MMLogger._instance_dict) - before:
            logger = MMLogger._instance_dict.pop(name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
