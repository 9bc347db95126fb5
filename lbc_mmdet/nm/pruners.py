"""One-shot N:M pruning of one layer by a named criterion, from its input statistics
(plain torch): ``'magnitude'`` (top-N ``|w|``, no data), ``'wanda'`` (top-N ``|w| *
||x||``, :mod:`.activation_scores`) and ``'sparsegpt'`` (OBS mask and update,
:mod:`.obs`). The weight and its inputs are in the project's grouping
(:mod:`.layer_inputs`)."""
from typing import Dict, Optional, Tuple

import torch

from .activation_scores import activation_score_mask
from .grouping import from_groups, to_groups
from .layer_inputs import InputStatistics, matrix_to_weight, weight_matrix
from .masks import topn_magnitude_mask
from .obs import obs_prune

#: criterion -> what it needs from calibration data (``InputStatistics.need``)
ONE_SHOT_CRITERIA: Dict[str, Optional[str]] = dict(
    magnitude=None, wanda='norms', sparsegpt='hessian')


def criterion_needs(criterion: str) -> Optional[str]:
    """``None``, ``'norms'`` or ``'hessian'``.

    Args:
        criterion (str): A key of :data:`ONE_SHOT_CRITERIA`.

    Returns:
        str or None: What the criterion needs from calibration data.

    Raises:
        ValueError: Unknown criterion (the message lists the known ones).
    """
    if criterion not in ONE_SHOT_CRITERIA:
        raise ValueError(f'unknown one-shot criterion {criterion!r}; choose from '
                         f'{sorted(ONE_SHOT_CRITERIA)}')
    return ONE_SHOT_CRITERIA[criterion]


@torch.no_grad()
def prune_weight(weight: torch.Tensor, n: int, m: int, criterion: str,
                 stats: Optional[InputStatistics] = None, damp: float = 0.01,
                 block_size: int = 128) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(new weight, bool mask)``, both shaped like ``weight`` (``[O, I, kh, kw]`` or
    ``[O, I]``): exactly N:M in the project's grouping. ``magnitude`` and ``wanda`` keep
    the kept weights' values; ``sparsegpt`` updates them.

    Args:
        weight (Tensor): ``[O, I, kh, kw]`` or ``[O, I]`` weight.
        n (int): Non-zeros per group.
        m (int): Group size.
        criterion (str): A key of :data:`ONE_SHOT_CRITERIA`.
        stats (InputStatistics, optional): The layer's input statistics (needed by the
            data-aware criteria). Defaults to None.
        damp (float): Damping of the OBS update. Defaults to 0.01.
        block_size (int): Columns per lazy OBS update block. Defaults to 128.

    Returns:
        tuple[Tensor, Tensor]: The new weight and its bool mask.

    Raises:
        ValueError: Unknown criterion, or statistics missing for it.
    """
    need = criterion_needs(criterion)
    if need is not None and (stats is None or (need == 'hessian' and stats.xtx is None)):
        raise ValueError(f'criterion {criterion!r} needs calibration statistics '
                         f'({need})')
    shape = tuple(weight.shape)
    if need is None:
        mask = from_groups(topn_magnitude_mask(to_groups(weight.detach(), m), n), shape)
        return weight.detach() * mask, mask
    matrix = weight_matrix(weight)
    if need == 'norms':
        keep = activation_score_mask(matrix, stats.column_norms().to(matrix.device), n, m)
        new = matrix * keep
    else:
        new, keep = obs_prune(matrix, stats.hessian(), n, m, block_size=block_size,
                              damp=damp)
    return matrix_to_weight(new, shape), matrix_to_weight(keep, shape)
