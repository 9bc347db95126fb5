"""Training-step cost of each N:M method against the dense detector, in one process.

What is measured (see ``docs/performance.md``):

- ``step_ms``: median wall time of one training step (``model(..., mode='loss')``,
  ``parse_losses``, ``backward``, ``SGD.step``, ``zero_grad``) of Faster R-CNN R50-FPN
  built from the ``configs/demo/faster_rcnn_r50_fpn_{dense,lbc,srste,asp,bame}_2of4_demo``
  configs, on one fixed synthetic batch. The models are stepped round-robin (dense, lbc,
  ..., dense, lbc, ...) so background load hits every method alike; ``warmup`` rounds are
  discarded. ``ratio`` is ``step_ms / step_ms(dense)``.
- ``lbc_official``: the LBC model whose layers rebuild their mask from the candidate
  matrix at every forward (``mask = (alive * scores != 0) @ table > 0``, the official LBC
  code's style) instead of caching it until a removal: the baseline for LBC's cached mask.
- ``saved_bytes``: bytes of the tensors autograd keeps for the backward during one step
  (unique storages seen by ``torch.autograd.graph.saved_tensors_hooks``): the activation
  memory between forward and backward, which is what a method adds to a CPU training
  step's peak. ``torch`` has no CPU allocator statistics and ``tracemalloc`` does not see
  tensor storage; the process' max RSS (``resource.getrusage``) is reported once for the
  whole run, as it only ever grows.
- ``extra_state_bytes``: bytes of every sparse layer's own parameters/buffers
  (``nm_extra_state_names``) plus its non-persistent caches.
- ``removal``: one LBC removal event over the whole backbone (``remove_to(k + 1)`` on every
  layer plus the mask rebuild by ``nm_mask()``), median over ``removal_reps`` repetitions.
"""
import copy
import datetime
import json
import os
import os.path as osp
import platform
import resource
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo', 'faster_rcnn_r50_fpn_{}_demo.py')
METHODS = ('dense', 'lbc', 'lbc_official', 'srste', 'asp', 'bame')
#: Goals (ratio to dense) on the reference machine.
GOALS = dict(lbc=1.05, srste=1.10, asp=1.10, bame=1.10)
REMOVAL_GOAL_MS = 50.0


def _official_lbc_class():
    from ..layers.lbc import LBCConv2d, _LBCMaskedWeight
    from ..nm import from_groups

    class OfficialStyleLBCConv2d(LBCConv2d):
        """LBC layer rebuilding its mask from the candidate matrix at every forward
        (benchmark baseline only)."""

        def _masked_weight(self):
            sel = (self.scores.detach() * self.alive) != 0
            groups = (sel.to(self._table.dtype) @ self._table) > 0
            mask = from_groups(groups, self.weight.shape).to(self.weight.dtype)
            if self.finished or not self.scores.requires_grad or not torch.is_grad_enabled():
                return self.weight * mask
            return _LBCMaskedWeight.apply(self.weight, self.scores, mask,
                                          self.alive.to(self.scores.dtype), self._table,
                                          self.nm_m)

    return OfficialStyleLBCConv2d


def build_model(method: str, depth: int = 50, seed: int = 0) -> torch.nn.Module:
    """Faster R-CNN of the demo config of ``method`` (``lbc_official``: the LBC model
    with :class:`OfficialStyleLBCConv2d` layers), in its training state: ASP pruned,
    BAME's mask initialised with its designated blocks, LBC with every candidate
    alive."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS

    import lbc_mmdet  # noqa: F401  (registers the layers)
    from ..layers import NMScheduleState, NMSparseMixin
    init_default_scope('mmdet')
    name = 'dense' if method == 'dense' else (
        'lbc_2of4' if method == 'lbc_official' else f'{method}_2of4')
    cfg = Config.fromfile(DEMO.format(name))
    if depth != 50:
        cfg.model.backbone.depth = depth
        if depth in (18, 34):
            cfg.model.neck.in_channels = [64, 128, 256, 512]
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.train()
    layers = [m for m in model.modules() if isinstance(m, NMSparseMixin)]
    if method == 'lbc_official':
        cls = _official_lbc_class()
        for layer in layers:
            layer.__class__ = cls
    state = NMScheduleState(t=0.0, ti=0.0, tf=100.0, iteration=0)
    for layer in layers:
        if method == 'asp':
            layer.prune_now()
        elif method == 'bame':
            layer.nm_update(state)
    return model


def make_batch(model, batch_size: int = 2, img_size: int = 128, seed: int = 0) -> dict:
    """One fixed synthetic batch, through the model's data preprocessor."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(seed)
    data = demo_mm_inputs(batch_size=batch_size, image_shapes=[(3, img_size, img_size)] * batch_size,
                          num_items=[3] * batch_size, num_classes=3, with_mask=False)
    return model.data_preprocessor(data, True)


def train_step(model, optimizer, data) -> float:
    """forward + backward + SGD step; returns the loss."""
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def saved_tensor_bytes(model, optimizer, data) -> int:
    """Bytes of the unique storages autograd saves for the backward in one step."""
    seen = {}

    def pack(t):
        try:
            st = t.untyped_storage()
            seen[st.data_ptr()] = st.nbytes()
        except Exception:  # noqa: BLE001
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    optimizer.zero_grad(set_to_none=True)
    return int(sum(seen.values()))


def extra_state_bytes(model) -> int:
    """Bytes of the sparse layers' own parameters/buffers and non-persistent caches."""
    from ..layers import NMSparseMixin
    total = 0
    for layer in model.modules():
        if not isinstance(layer, NMSparseMixin) or not layer.nm_eligible:
            continue
        names = set(layer.nm_extra_state_names) | set(
            getattr(layer, '_non_persistent_buffers_set', ()))
        for name in names:
            t = getattr(layer, name, None)
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()
    return total


def time_removal(model, reps: int = 3) -> Dict[str, float]:
    """One LBC removal event on every LBC layer of ``model.backbone`` (on copies)."""
    from ..layers.lbc import LBCMixin
    times = []
    for _ in range(reps):
        backbone = copy.deepcopy(model.backbone)
        layers = [m for m in backbone.modules()
                  if isinstance(m, LBCMixin) and m.nm_eligible]
        for layer in layers:
            layer.nm_mask()  # cache warm, as during training
        t0 = time.perf_counter()
        for layer in layers:
            layer.remove_to(layer.num_removed + 1)
            layer.nm_mask()
        times.append((time.perf_counter() - t0) * 1e3)
    return dict(removal_ms=statistics.median(times), removal_all_ms=times,
                layers=len(layers))


def run_training_benchmark(methods: Sequence[str] = METHODS,
                           warmup: int = 2,
                           iters: int = 5,
                           depth: int = 50,
                           batch_size: int = 2,
                           img_size: int = 128,
                           removal_reps: int = 3,
                           out: Optional[str] = None,
                           threads: Optional[int] = None,
                           log=print) -> dict:
    """Run the benchmark; write ``results.json`` and ``results.md`` under ``out``."""
    if threads:
        torch.set_num_threads(threads)
    methods = list(methods)
    if 'dense' not in methods:
        methods.insert(0, 'dense')
    models, opts, batches, rows = {}, {}, {}, {}
    for method in methods:
        t0 = time.perf_counter()
        model = build_model(method, depth=depth)
        models[method] = model
        opts[method] = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9,
                                       weight_decay=1e-4)
        batches[method] = make_batch(model, batch_size, img_size)
        rows[method] = dict(method=method, extra_state_bytes=extra_state_bytes(model),
                            saved_bytes=saved_tensor_bytes(model, opts[method],
                                                           batches[method]))
        log(f'built {method} in {time.perf_counter() - t0:.1f} s')
    times: Dict[str, List[float]] = {m: [] for m in methods}
    for r in range(warmup + iters):
        for method in methods:
            t0 = time.perf_counter()
            train_step(models[method], opts[method], batches[method])
            dt = (time.perf_counter() - t0) * 1e3
            if r >= warmup:
                times[method].append(dt)
        log(f'round {r + 1}/{warmup + iters}' + (' (warm-up)' if r < warmup else '') +
            ': ' + ', '.join(f'{m} {times[m][-1]:.0f} ms' if r >= warmup else m
                             for m in methods))
    dense_ms = statistics.median(times['dense'])
    dense_saved = rows['dense']['saved_bytes']
    for method in methods:
        med = statistics.median(times[method])
        row = rows[method]
        row.update(step_ms=med, step_all_ms=times[method], ratio=med / dense_ms,
                   saved_ratio=row['saved_bytes'] / max(dense_saved, 1),
                   goal=GOALS.get(method))
        row['goal_met'] = None if row['goal'] is None else bool(row['ratio'] <= row['goal'])
    removal = None
    if 'lbc' in models:
        removal = time_removal(models['lbc'], reps=removal_reps)
        removal['goal_ms'] = REMOVAL_GOAL_MS
        removal['goal_met'] = bool(removal['removal_ms'] <= REMOVAL_GOAL_MS)
    result = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                     torch=torch.__version__),
        settings=dict(warmup=warmup, iters=iters, depth=depth, batch_size=batch_size,
                      img_size=img_size, removal_reps=removal_reps),
        methods=[rows[m] for m in methods],
        removal=removal,
        max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    result['markdown'] = to_markdown(result)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(osp.join(out, 'results.json'), 'w') as f:
            json.dump(result, f, indent=2)
        with open(osp.join(out, 'results.md'), 'w') as f:
            f.write(result['markdown'])
    return result


def to_markdown(result: dict) -> str:
    s = result['settings']
    lines = [
        f"Training step, Faster R-CNN R{s['depth']}-FPN, batch {s['batch_size']} x "
        f"{s['img_size']} px, median of {s['iters']} (warm-up {s['warmup']}), "
        f"{result['machine']['torch_threads']} torch threads, {result['date']}", '',
        '| method | step (ms) | ratio to dense | goal | met | saved-for-backward (MB) '
        '| vs dense | extra state (MB) |',
        '|---|---:|---:|---:|:-:|---:|---:|---:|'
    ]
    for r in result['methods']:
        goal = '' if r['goal'] is None else f"<= {r['goal']:.2f}x"
        met = '' if r['goal_met'] is None else ('yes' if r['goal_met'] else 'no')
        lines.append(f"| {r['method']} | {r['step_ms']:.0f} | {r['ratio']:.3f} | {goal} | "
                     f"{met} | {r['saved_bytes'] / 2**20:.1f} | {r['saved_ratio']:.3f} | "
                     f"{r['extra_state_bytes'] / 2**20:.2f} |")
    rm = result.get('removal')
    if rm:
        lines += ['', f"LBC removal event over the backbone ({rm['layers']} layers, "
                  f"remove_to + nm_mask): {rm['removal_ms']:.1f} ms (goal <= "
                  f"{rm['goal_ms']:.0f} ms: {'met' if rm['goal_met'] else 'missed'})"]
    lines += ['', f"process max RSS: {result['max_rss_mb']:.0f} MB", '']
    return '\n'.join(lines)
