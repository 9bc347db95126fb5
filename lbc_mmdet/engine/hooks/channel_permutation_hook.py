"""``ChannelPermutationHook``: permute input channels before N:M pruning from dense weights.

For a method that starts from dense weights (ASP's one-shot prune of a ``load_from``
checkpoint, or any method fine-tuned from a dense model), reordering the input channels
of the permutable convs first (``conv2``/``conv3`` of ResNet blocks, see
:mod:`lbc_mmdet.deploy.channel_permutation`) makes top-N magnitude pruning keep more
magnitude, without changing what the dense network computes (Pool & Yu, NeurIPS 2021).

Order of events in ``Runner.train()``: the optimizer is built, ``before_run``, the weights
are loaded (``load_or_resume``: ``load_from``), then ``before_train``. This hook's
``before_train`` runs before ``NMSparsityHook``'s (priority ``ABOVE_NORMAL`` vs
``NORMAL``), so the sequence is: load dense weights -> permute -> the method's first
update (ASP prunes at ``ti=0``). It only acts at iteration 0 (not on a resume: the
checkpoint holds the permuted weights). The permutation is done in place on the
Parameters: the optimizer keeps its references, and its state is still empty before the
first step (checked: a non-empty state is refused). The pattern of each layer is read
from the model's sparse layers (``nm_n``/``nm_m``); a dense consumer conv is skipped
unless ``n``/``m`` are given. EMA copies of the model (any hook with an ``ema_model``)
get the same permutation. In distributed training rank 0 searches and the result is
broadcast. Kept magnitude per layer and in total (before/after) is logged and written
to ``<log_dir>/channel_permutation.json``.
"""
import json
import os.path as osp
from typing import Dict, Iterable, List, Optional

import torch
from mmdet.registry import HOOKS
from mmengine.dist import broadcast_object_list, get_dist_info, is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ...deploy.channel_permutation import (
    PermutationError,
    apply_permutations,
    find_permutable_layers,
    plan_permutation_map,
    plan_permutations,
    plan_summary,
)

#: File written into ``runner.log_dir``.
REPORT_FILE = 'channel_permutation.json'


def _optimizer_states(optim_wrapper) -> List[dict]:
    if optim_wrapper is None:
        return []
    wrappers = optim_wrapper.values() if hasattr(optim_wrapper, 'values') else [
        optim_wrapper]
    return [w.optimizer.state for w in wrappers if hasattr(w, 'optimizer')]


def check_optimizer_state(model: torch.nn.Module, names: Iterable[str],
                          optim_wrapper) -> None:
    """Refuse to permute when the optimizer already holds state (momentum ...) for a
    parameter that would be permuted: that state would no longer match."""
    layers = {lay.name: lay for lay in find_permutable_layers(model)[0]}
    params = {id(p) for name in names
              for mod in (layers[name].producer, layers[name].norm, layers[name].consumer)
              for p in mod.parameters(recurse=False)}
    for state in _optimizer_states(optim_wrapper):
        if any(id(p) in params and s for p, s in state.items()):
            raise PermutationError(
                'ChannelPermutationHook: the optimizer already holds state for '
                'parameters to permute; permute before the first optimizer step')


@HOOKS.register_module()
class ChannelPermutationHook(Hook):
    """Permute input channels of the permutable convs at the start of training.

    Args:
        time_limit (float): Seconds of search per layer. Defaults to 10.
        include (list[str], optional): ``fnmatch`` patterns on the consumer convs' names
            (default: every permutable conv).
        n, m (int, optional): Pattern for consumer convs that are not N:M sparse layers
            (default: skip them).
    """
    priority = 'ABOVE_NORMAL'  # before NMSparsityHook ('NORMAL') computes any mask

    def __init__(self, time_limit: float = 10.0, include: Optional[List[str]] = None,
                 n: Optional[int] = None, m: Optional[int] = None) -> None:
        if (n is None) != (m is None) or (n is not None and not 0 < n < m):
            raise ValueError(f'ChannelPermutationHook: give both n and m with 0 < n < m, '
                             f'got n={n}, m={m}')
        self.time_limit = float(time_limit)
        self.include = include
        self.n, self.m = n, m
        self.report: Optional[Dict] = None

    def before_train(self, runner) -> None:
        if runner.iter != 0:
            runner.logger.info(f'ChannelPermutationHook: resumed at iteration '
                               f'{runner.iter}: channels are not permuted again')
            return
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        rank, world = get_dist_info()
        payload: List = [None]
        if rank == 0:
            plan = plan_permutations(model, self.n, self.m, include=self.include,
                                     time_limit=self.time_limit,
                                     logger=lambda line: runner.logger.info(
                                         f'channel permutation: {line}'))
            payload = [dict(perms={k: v.tolist() for k, v in
                                   plan_permutation_map(plan).items()},
                            report=plan_summary(plan))]
        if world > 1:
            broadcast_object_list(payload, src=0)
        perms = {k: torch.tensor(v, dtype=torch.long) for k, v in payload[0]['perms'].items()}
        self.report = payload[0]['report']
        check_optimizer_state(model, perms, getattr(runner, 'optim_wrapper', None))
        apply_permutations(model, perms)
        for hook in runner.hooks:
            ema = getattr(hook, 'ema_model', None)
            if ema is not None and hook is not self:
                apply_permutations(getattr(ema, 'module', ema), perms)
        self._log(runner)

    def _log(self, runner) -> None:
        s = self.report['summary']
        if not s['layers']:
            runner.logger.warning(
                'ChannelPermutationHook: nothing to permute (no permutable N:M sparse '
                f'layer; skipped: {len(self.report["skipped"])})')
        else:
            runner.logger.info(
                f"channel permutation: {s['permuted']}/{s['layers']} layers permuted, kept "
                f"|w| {s['kept_before']:.6g} -> {s['kept_after']:.6g} "
                f"({100 * s['gain']:+.2f}%) of {s['total']:.6g}")
        if is_main_process() and getattr(runner, 'log_dir', None):
            path = osp.join(runner.log_dir, REPORT_FILE)
            from ...utils import atomic_write
            atomic_write(path, json.dumps(self.report, indent=2))
            runner.logger.info(f'channel permutation report: {path}')
