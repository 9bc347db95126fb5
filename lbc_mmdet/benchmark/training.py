"""Training-step cost of each N:M method against the dense detector, in one process.

What is measured (see ``docs/performance.md``):

- ``step_ms``: median wall time of one training step (``model(..., mode='loss')``,
  ``parse_losses``, ``backward``, ``SGD.step``, ``zero_grad``) of the detector of a dense
  config, made sparse by :func:`lbc_mmdet.sparsify` for each registered method (and each
  registered benchmark variant) on its backbone, on one fixed synthetic batch. The models
  are stepped round-robin so background load hits every method alike; ``warmup`` rounds
  are discarded. ``ratio`` is ``step_ms / step_ms(dense)``.
- ``saved_bytes``: bytes of the tensors autograd keeps for the backward during one step
  (unique storages seen by ``torch.autograd.graph.saved_tensors_hooks``).
- ``extra_state_bytes``: bytes of every sparse layer's own parameters/buffers
  (``nm_extra_state_names``) plus its non-persistent caches.
- ``events``: the wall time of the schedule's mask-update events over the whole backbone
  (one ``nm_update`` call on every layer that changes a mask), median over the events of
  a short window.
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
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..apis.models import build_model
from ..layers import DENSE, NMScheduleState, NMSparseMixin, get_method, method_names
from ..sparsify import sparsify
from ..utils import atomic_write
from .cpu_use import CpuWatch
from .weight_side import weight_side_ms

#: Goals (ratio to dense) on the reference machine, by method key (others: none).
GOALS: Dict[str, float] = {}
EVENT_GOAL_MS = 50.0


def benchmark_entries() -> List[str]:
    """``dense``, every registered method and every registered variant."""
    entries = [DENSE]
    for name in method_names():
        entries.append(name)
        entries += sorted(get_method(name).variants)
    return entries


def _entry_method(entry: str) -> Tuple[str, Optional[str]]:
    """``(method, variant)`` of a benchmark entry (``variant`` None for the method)."""
    for name in method_names():
        if entry == name:
            return name, None
        if entry in get_method(name).variants:
            return name, entry
    raise ValueError(f'unknown benchmark entry {entry!r}; known: {benchmark_entries()}')


def benchmark_model(entry: str, config: str, depth: int = 50, seed: int = 0,
                    n: int = 2, m: int = 4) -> torch.nn.Module:
    """The detector of a dense config with its backbone made an entry's N:M layers.

    The model is built through :func:`lbc_mmdet.apis.build_model` (its readable config
    errors) and is left in its training state at the start of a schedule window
    (``nm_update`` at ``t = ti = 0``: a mask computed once is computed, a mask that
    evolves has its first designation).

    Args:
        entry (str): ``'dense'``, a method key or a registered variant
            (:func:`benchmark_entries`).
        config (str): The dense detector config (a file or ``mmdet::...``).
        depth (int): The ResNet depth of the backbone. Defaults to 50.
        seed (int): The torch seed the weights are drawn with. Defaults to 0.
        n (int): Weights kept per group. Defaults to 2.
        m (int): Group size. Defaults to 4.

    Returns:
        torch.nn.Module: The model, in training mode.
    """
    options = {}
    if depth != 50:
        options['model.backbone.depth'] = depth
        if depth in (18, 34):
            options['model.neck.in_channels'] = [64, 128, 256, 512]
    torch.manual_seed(seed)
    _, model = build_model(config, options)
    model.train()
    if entry == DENSE:
        return model
    method, variant = _entry_method(entry)
    sparsify(model, method, n, m, include=['backbone.*'])
    layers = [mod for mod in model.modules() if isinstance(mod, NMSparseMixin)]
    if variant is not None:
        classes = get_method(method).variants[variant]
        for layer in layers:
            for kind, cls in classes.items():
                if type(layer).__name__ == get_method(method).layers[kind].__name__:
                    layer.__class__ = cls
    state = NMScheduleState(t=0.0, ti=0.0, tf=100.0, iteration=0)
    for layer in layers:
        layer.nm_update(state)
    return model


def make_batch(model, batch_size: int = 2, img_size: int = 128, seed: int = 0) -> dict:
    """One fixed synthetic batch, through the model's data preprocessor."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(seed)
    data = demo_mm_inputs(batch_size=batch_size,
                          image_shapes=[(3, img_size, img_size)] * batch_size,
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


def saved_tensor_bytes(model, optimizer, data) -> Tuple[int, int]:
    """Bytes of the unique storages autograd saves for the backward in one step:
    ``(all, new)``, ``new`` leaving out the model's own parameters and buffers (which exist
    whether or not a step runs)."""
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
    own = {t.untyped_storage().data_ptr() for t in list(model.parameters()) +
           list(model.buffers())}
    return (int(sum(seen.values())),
            int(sum(v for k, v in seen.items() if k not in own)))


def extra_state_bytes(model) -> int:
    """Bytes of the sparse layers' own parameters/buffers and non-persistent caches."""
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


def time_events(model, steps: int = 10, reps: int = 1) -> Dict[str, float]:
    """Wall time of the mask-update events of a schedule window ``[0, steps]`` over the
    backbone's sparse layers (on a copy): ``nm_update`` at ``t = 1 .. steps``
    (``iteration = 100 t``), timing the calls that change a mask, each followed by
    ``nm_refresh`` (the cached mask rebuilt, as the next forward would; no float copy of
    the mask, which training does not make)."""
    times = []
    layers = 0
    for _ in range(reps):
        backbone = copy.deepcopy(model.backbone)
        sparse = [mod for mod in backbone.modules()
                  if isinstance(mod, NMSparseMixin) and mod.nm_eligible]
        layers = len(sparse)
        for layer in sparse:
            layer.nm_refresh()  # caches warm, as during training
        for t in range(1, steps + 1):
            state = NMScheduleState(t=float(t), ti=0.0, tf=float(steps), iteration=100 * t)
            t0 = time.perf_counter()
            changed = False
            for layer in sparse:
                changed |= bool(layer.nm_update(state))
                layer.nm_refresh()  # what the next forward does first (no mask copy)
            dt = (time.perf_counter() - t0) * 1e3
            if changed:
                times.append(dt)
    return dict(event_ms=statistics.median(times) if times else None,
                event_all_ms=times, events=len(times), layers=layers)


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _measure_size(models, opts, methods, batch_size, img_size, warmup, iters, goals,
                  log) -> List[dict]:
    """Round-robin step times and saved bytes of every entry at one input size."""
    batches, rows = {}, {}
    for method in methods:
        batches[method] = make_batch(models[method], batch_size, img_size)
        saved, saved_new = saved_tensor_bytes(models[method], opts[method], batches[method])
        rows[method] = dict(method=method, extra_state_bytes=extra_state_bytes(
            models[method]), saved_bytes=saved, saved_new_bytes=saved_new)
    times: Dict[str, List[float]] = {m: [] for m in methods}
    for r in range(warmup + iters):
        for method in methods:
            t0 = time.perf_counter()
            train_step(models[method], opts[method], batches[method])
            dt = (time.perf_counter() - t0) * 1e3
            if r >= warmup:
                times[method].append(dt)
        log(f'{img_size} px, round {r + 1}/{warmup + iters}' +
            (' (warm-up)' if r < warmup else '') + ': ' +
            ', '.join(f'{m} {times[m][-1]:.0f} ms' if r >= warmup else m for m in methods))
    dense_ms = statistics.median(times[DENSE])
    dense = rows[DENSE]
    for method in methods:
        med = statistics.median(times[method])
        row = rows[method]
        row.update(step_ms=med, step_all_ms=times[method], ratio=med / dense_ms,
                   saved_ratio=row['saved_bytes'] / max(dense['saved_bytes'], 1),
                   saved_new_ratio=row['saved_new_bytes'] / max(dense['saved_new_bytes'], 1),
                   goal=goals.get((method, img_size), goals.get(method)))
        row['goal_met'] = None if row['goal'] is None else bool(row['ratio'] <= row['goal'])
    return [rows[m] for m in methods]


def run_training_benchmark(config: str,
                           methods: Optional[Sequence[str]] = None,
                           warmup: int = 2,
                           iters: int = 5,
                           depth: int = 50,
                           batch_size: int = 2,
                           img_sizes: Sequence[int] = (128, 512),
                           removal_reps: int = 3,
                           out: Optional[str] = None,
                           threads: Optional[int] = None,
                           goals: Optional[Dict] = None,
                           event_goal_ms: Optional[float] = EVENT_GOAL_MS,
                           max_load: float = 1.5,
                           max_others: float = 0.25,
                           weight_side_reps: int = 5,
                           log=print) -> dict:
    """Run the benchmark on the detector of the dense ``config`` at every input size; write
    ``results.json`` and ``results.md`` under ``out``. A run says it is not trustworthy when
    the load average at its start is above ``max_load``, or when other processes (or the
    hypervisor's steal) took more than ``max_others`` cores on average while it ran
    (:class:`~lbc_mmdet.benchmark.cpu_use.CpuWatch`; where the platform cannot tell, when the
    load average at the end less this run's own threads is above ``max_load``).

    Args:
        config (str): The dense detector config (a file or ``mmdet::...``).
        methods (Sequence[str], optional): Entries (:func:`benchmark_entries`). Defaults to all.
        warmup (int): Rounds discarded before the timed ones. Defaults to 2.
        iters (int): Rounds timed. Defaults to 5.
        depth (int): The ResNet depth of the backbone. Defaults to 50.
        batch_size (int): Images per step. Defaults to 2.
        img_sizes (Sequence[int]): Input sizes, one table each. Defaults to ``(128, 512)``.
        removal_reps (int): Repetitions of the mask-update event timing. Defaults to 3.
        out (str, optional): Folder of the result files. Defaults to None (nothing written).
        threads (int, optional): torch's thread count. Defaults to None (unchanged).
        goals (dict, optional): entry or ``(entry, img_size)`` -> the step ratio to meet.
        event_goal_ms (float, optional): Goal of a mask-update event. Defaults to 50.0.
        max_load (float): Highest trustworthy load average. Defaults to 1.5.
        max_others (float): Most cores others may take on average. Defaults to 0.25.
        weight_side_reps (int): > 0: also time what bounds each method's extra cost
            (:func:`~lbc_mmdet.benchmark.weight_side.weight_side_ms`). Defaults to 5.
        log (callable): Called with progress lines. Defaults to ``print``.

    Returns:
        dict: The results (``results.json``'s content and its ``markdown``).
    """
    if threads:
        torch.set_num_threads(threads)
    load_start = load_average()
    watch = CpuWatch()
    goals = dict(goals or {})
    methods = list(methods or benchmark_entries())
    for entry in methods:
        if entry != DENSE:
            _entry_method(entry)
    if DENSE not in methods:
        methods.insert(0, DENSE)
    models, opts = {}, {}
    for method in methods:
        t0 = time.perf_counter()
        models[method] = benchmark_model(method, config, depth=depth)
        opts[method] = torch.optim.SGD(models[method].parameters(), lr=1e-4, momentum=0.9,
                                       weight_decay=1e-4)
        log(f'built {method} in {time.perf_counter() - t0:.1f} s')
    sizes = {}
    for img_size in img_sizes:
        sizes[str(img_size)] = _measure_size(models, opts, methods, batch_size, img_size,
                                             warmup, iters, goals, log)
    events = {}
    for method in methods:
        if method == DENSE:
            continue
        ev = time_events(models[method], reps=removal_reps)
        if ev['events']:
            ev['goal_ms'] = event_goal_ms
            ev['goal_met'] = (None if event_goal_ms is None else
                              bool(ev['event_ms'] <= event_goal_ms))
            events[method] = ev
    parts = {}
    if weight_side_reps > 0:
        for method in methods:
            if method != DENSE:
                parts[method] = weight_side_ms(models[method], reps=weight_side_reps)
    load_end = load_average()
    cpu = watch.stop()
    own_threads = torch.get_num_threads()
    if cpu['others_cores'] is not None:
        busy_ok = max(cpu['others_cores'], cpu['steal_cores']) <= max_others
    else:
        busy_ok = load_end is not None and load_end - own_threads <= max_load
    trustworthy = bool(load_start is not None and load_start <= max_load and busy_ok)
    result = dict(
        date=datetime.datetime.now().isoformat(timespec='seconds'),
        machine=dict(platform=platform.platform(), processor=platform.processor(),
                     cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(),
                     torch=torch.__version__),
        load=dict(start=load_start, end=load_end, max_trustworthy=max_load,
                  others_cores=cpu['others_cores'], steal_cores=cpu['steal_cores'],
                  own_cores=cpu['own_cores'], wall_s=cpu['wall_s'],
                  max_others_cores=max_others, trustworthy=trustworthy),
        settings=dict(warmup=warmup, iters=iters, depth=depth, batch_size=batch_size,
                      img_sizes=list(img_sizes), removal_reps=removal_reps),
        sizes=sizes,
        events=events,
        weight_side=parts,
        max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
    result['markdown'] = to_markdown(result)
    if out:
        atomic_write(osp.join(out, 'results.json'), json.dumps(result, indent=2))
        atomic_write(osp.join(out, 'results.md'), result['markdown'])
    return result


def to_markdown(result: dict) -> str:
    s = result['settings']
    load = result['load']
    fmt = lambda x: '-' if x is None else f'{x:.2f}'  # noqa: E731
    lines = [f"Training step, Faster R-CNN R{s['depth']}-FPN, batch {s['batch_size']}, median "
             f"of {s['iters']} (warm-up {s['warmup']}), "
             f"{result['machine']['torch_threads']} torch threads, {result['date']}; load "
             f"average {fmt(load['start'])} at the start, {fmt(load['end'])} at the end "
             f"(this run's own threads included); other processes took "
             f"{fmt(load.get('others_cores'))} cores and the hypervisor's steal "
             f"{fmt(load.get('steal_cores'))} cores on average while it ran (this run: "
             f"{fmt(load.get('own_cores'))})" +
             ('' if load['trustworthy'] else
              ' -- the machine was not idle: these timings are not trustworthy')]
    for size, rows in result['sizes'].items():
        lines += ['', f'{size} px:', '',
                  '| method | step (ms) | ratio to dense | goal | met | saved-for-backward '
                  '(MB) | vs dense | new tensors saved (MB) | vs dense | extra state (MB) |',
                  '|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|']
        for r in rows:
            goal = '' if r['goal'] is None else f"<= {r['goal']:.2f}x"
            met = '' if r['goal_met'] is None else ('yes' if r['goal_met'] else 'no')
            lines.append(
                f"| {r['method']} | {r['step_ms']:.0f} | {r['ratio']:.3f} | {goal} | {met} | "
                f"{r['saved_bytes'] / 2**20:.1f} | {r['saved_ratio']:.3f} | "
                f"{r['saved_new_bytes'] / 2**20:.1f} | {r['saved_new_ratio']:.3f} | "
                f"{r['extra_state_bytes'] / 2**20:.2f} |")
    for method, ev in (result.get('events') or {}).items():
        goal = ('' if ev.get('goal_ms') is None else
                f" (goal <= {ev['goal_ms']:.0f} ms: {'met' if ev['goal_met'] else 'missed'})")
        lines += ['', f"{method}: mask-update event over the backbone ({ev['layers']} layers, "
                  f"median of {ev['events']} events): {ev['event_ms']:.1f} ms{goal}"]
    parts = result.get('weight_side') or {}
    if parts:
        lines += ['', 'What bounds the extra cost (timed alone over the backbone\'s sparse '
                  'layers, medians): one elementwise pass over their weights; each method\'s '
                  'weight-side work of a step (`forward_weight()` of every layer and its '
                  'backward); the SGD step over its own trainable state.', '',
                  '| method | weights | one pass (ms) | weight-side fwd+bwd (ms) | = passes | '
                  'own trainable state | its SGD step (ms) |',
                  '|---|---:|---:|---:|---:|---:|---:|']
        for method, p in parts.items():
            lines.append(
                f"| {method} | {p['weights'] / 1e6:.1f} M | {p['weight_pass_ms']:.1f} | "
                f"{p['forward_weight_ms']:.0f} | "
                f"{p['forward_weight_ms'] / max(p['weight_pass_ms'], 1e-9):.1f} | "
                f"{p['extra_params'] / 1e6:.1f} M | {p['extra_optimizer_ms']:.0f} |")
    lines += ['', f"process max RSS: {result['max_rss_mb']:.0f} MB", '']
    return '\n'.join(lines)
