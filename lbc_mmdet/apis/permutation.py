"""Measure what channel permutation buys N:M magnitude pruning: on a trained detector's
backbone (per layer, per stage, in total) and on random matrices."""
import time
from typing import Dict, Optional, Sequence, Tuple

import torch

from ..deploy.channel_permutation import plan_permutations, plan_summary
from ..nm.permutation import kept_magnitude, search_permutation
from ..utils import matches
from .models import load_dense_model

#: Format tag of the report.
REPORT_FORMAT = 'lbc_mmdet.permutation_report/v1'
#: Random matrices measured by default: apex's README size (128 rows x 64 columns) and
#: two R50-sized 1x1 convs ([O, I]).
DEFAULT_SHAPES = ((128, 64), (256, 64), (512, 128))


def _stage(name: str) -> str:
    """``backbone.layer2.0.conv2`` -> ``backbone.layer2``."""
    return '.'.join(name.split('.')[:2])


def _add(acc: Dict, key: str, before: float, after: float, total: float) -> None:
    e = acc.setdefault(key, dict(layers=0, total=0.0, kept_before=0.0, kept_after=0.0))
    e['layers'] += 1
    e['total'] += total
    e['kept_before'] += before
    e['kept_after'] += after


def _finish(acc: Dict) -> Dict:
    for e in acc.values():
        e['gain'] = e['kept_after'] / e['kept_before'] - 1.0 if e['kept_before'] else 0.0
    return {k: acc[k] for k in sorted(acc, key=lambda k: (k == 'total', k))}


#: Fields of :class:`~lbc_mmdet.nm.permutation.PermutationResult` averaged over seeds.
_MEANS = ('total', 'kept_before', 'kept_after', 'row_bound', 'gain', 'efficacy')


def _mean(runs, key: str) -> float:
    return sum(float(getattr(r, key)) for r in runs) / len(runs)


@torch.no_grad()
def model_report(model: torch.nn.Module, n: int, m: int,
                 include: Sequence[str] = ('backbone.*', ), time_limit: float = 10.0,
                 log=print) -> Dict:
    """Kept magnitude under top-N ``n:m`` pruning of every prunable conv of ``model``
    matching ``include`` (``groups == 1``, input channels divisible by ``m``), without and
    with the permutations of :func:`~lbc_mmdet.deploy.channel_permutation.plan_permutations`
    (only the permutable layers change). Nothing is modified."""
    plan = plan_permutations(model, n, m, include=include, time_limit=time_limit,
                             logger=log)
    summary = plan_summary(plan)
    searched = {e['name']: e for e in summary['layers']}
    stages: Dict = {}
    permutable: Dict = {}
    for name, mod in model.named_modules():
        if not (isinstance(mod, torch.nn.Conv2d) and matches(name, list(include))
                and mod.groups == 1 and mod.in_channels % m == 0):
            continue
        if name in searched:
            e = searched[name]
            before, after, total = e['kept_before'], e['kept_after'], e['total']
            _add(permutable, _stage(name), before, after, total)
            _add(permutable, 'total', before, after, total)
        else:
            before = after = kept_magnitude(mod.weight, n, m)
            total = float(mod.weight.detach().abs().double().sum())
        _add(stages, _stage(name), before, after, total)
        _add(stages, 'total', before, after, total)
    return dict(pattern=f'{n}:{m}', include=list(include), time_limit=time_limit,
                prunable=_finish(stages), permutable=_finish(permutable),
                layers=summary['layers'], skipped=summary['skipped'])


def random_report(shapes: Sequence[Tuple[int, ...]] = DEFAULT_SHAPES, n: int = 2, m: int = 4,
                  seeds: Sequence[int] = (0, 1, 2), dists: Sequence[str] = ('gaussian',
                                                                              'uniform'),
                  time_limit: float = 10.0) -> Dict:
    """The search on random ``[rows, columns]`` (or conv-shaped) weights: standard normal
    (``gaussian``) and uniform on ``[0, 1)`` (``uniform``, apex's README). Per shape and
    distribution: mean kept fraction before and after, mean relative gain and efficacy
    over ``seeds``."""
    out = []
    for shape in shapes:
        for dist in dists:
            runs = []
            for seed in seeds:
                gen = torch.Generator().manual_seed(seed)
                w = (torch.randn(shape, generator=gen) if dist == 'gaussian' else
                     torch.rand(shape, generator=gen))
                runs.append(search_permutation(w, n, m, time_limit=time_limit))
            out.append(dict(shape=list(shape), dist=dist, seeds=list(seeds),
                            stopped=sorted({r.stopped for r in runs}),
                            **{key: _mean(runs, key) for key in _MEANS}))
    return dict(pattern=f'{n}:{m}', time_limit=time_limit, matrices=out)


def permutation_report(config: Optional[str], checkpoint: Optional[str], n: int = 2,
                       m: int = 4, include: Sequence[str] = ('backbone.*', ),
                       time_limit: float = 10.0, random_shapes: Sequence = (),
                       seeds: Sequence[int] = (0, 1, 2), cfg_options: Optional[dict] = None,
                       log=print) -> Dict:
    """:func:`model_report` of ``config`` + ``checkpoint`` (when given; loaded as
    ``load_dense_model`` does) and :func:`random_report` of ``random_shapes``.

    Args:
        config (str, optional): The model's config; None measures no model.
        checkpoint (str, optional): The model's checkpoint (with ``config``).
        n (int): Non-zeros per group. Defaults to 2.
        m (int): Group size. Defaults to 4.
        include (Sequence[str]): Patterns of the layer names measured. Defaults to
            ``('backbone.*', )``.
        time_limit (float): Seconds of search per matrix. Defaults to 10.0.
        random_shapes (Sequence): Shapes of the random matrices measured. Defaults to
            ``()`` (none).
        seeds (Sequence[int]): Seeds of the random matrices. Defaults to ``(0, 1, 2)``.
        cfg_options (dict, optional): Overrides merged into the config. Defaults to None.
        log (callable): Called with one line per searched layer. Defaults to ``print``.

    Returns:
        dict: The report: ``format``, ``pattern``, ``config``, ``checkpoint``, ``model``
        and/or ``random`` when measured, and ``seconds``.
    """
    start = time.time()
    report = dict(format=REPORT_FORMAT, pattern=f'{n}:{m}', config=config,
                  checkpoint=checkpoint)
    if config is not None:
        model = load_dense_model(config, checkpoint, cfg_options)
        report['model'] = model_report(model, n, m, include, time_limit, log=log)
    if random_shapes:
        report['random'] = random_report(random_shapes, n, m, seeds, time_limit=time_limit)
    report['seconds'] = time.time() - start
    return report


def report_lines(report: Dict) -> list:
    """A plain-text table of a :func:`permutation_report`."""
    lines = []
    if 'model' in report:
        rep = report['model']
        lines.append(f"kept |w| at {rep['pattern']} (top-N magnitude), without -> with "
                     'channel permutation:')
        lines.append(f"{'':24s}{'layers':>7s}{'sum |w|':>13s}{'kept before':>13s}"
                     f"{'kept after':>13s}{'gain':>9s}")
        for title, table in (('permutable layers', rep['permutable']),
                             ('all prunable convs', rep['prunable'])):
            lines.append(title + ':')
            for key, e in table.items():
                lines.append(f"  {key:22s}{e['layers']:7d}{e['total']:13.1f}"
                             f"{e['kept_before']:13.1f}{e['kept_after']:13.1f}"
                             f"{100 * e['gain']:+8.2f}%")
    if 'random' in report:
        rep = report['random']
        lines.append(f"random matrices at {rep['pattern']} (mean over seeds):")
        for e in rep['matrices']:
            lines.append(f"  {'x'.join(map(str, e['shape'])):>10s} {e['dist']:8s} kept "
                         f"{e['kept_before'] / e['total']:.4f} -> "
                         f"{e['kept_after'] / e['total']:.4f} of sum |w| "
                         f"(gain {100 * e['gain']:+.2f}%, efficacy "
                         f"{100 * e['efficacy']:.1f}%)")
    return lines


__all__ = ['REPORT_FORMAT', 'DEFAULT_SHAPES', 'model_report', 'random_report',
           'permutation_report', 'report_lines']
