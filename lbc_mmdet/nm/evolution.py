"""BAME's block-wise mask evolution in plain torch (no mmengine/mmdet).

The maths of the reconstructed BAME (``docs/bame_spec.md``; the layer is
``lbc_mmdet/layers/bame.py``) on the grouped ``[G, M]`` layout, one row per N:M group
("block"):

- :func:`designation_fraction` / :func:`num_designated`: ``rho(t) = rho0 * (1 - (t - ti) /
  (tf - ti)) ** 3`` and ``k_t = ceil(rho(t) * G)``;
- :func:`selection_scores`, :func:`lma_select`, :func:`mask_gain`: Loss-aware Mask
  Adaptation (top-N of ``|w * g|`` or ``|w|``, and its expected loss reduction);
- :func:`mask_code`, :func:`oscillated`, :func:`oscillation_frequency`,
  :func:`freeze_decision`: oscillation detection and Oscillation-aware Block Freezing;
- :func:`designation_scores`, :func:`designate`: the joint score
  ``J = gain_est * (1 - osc)`` and the choice of the next designated blocks;
- :func:`evolve_blocks`: one whole update (LMA, oscillation, OBF, designation), pure.

Every decision is a deterministic function of its inputs: stable sorts, ties broken by the
lowest index (LMA additionally prefers the weights already kept on an exact tie, so a block
whose scores are all tied keeps its mask).
"""
from typing import NamedTuple

import torch

from .schedule import ceil_count, cubic_remaining

#: Criteria accepted by :func:`selection_scores`.
CRITERIA = ('taylor', 'magnitude')

#: Largest M whose mask fits the int64 bit pattern of :func:`mask_code`.
MAX_CODE_BITS = 62


# --------------------------------------------------------------------------- schedule
def designation_fraction(t: float, ti: float, tf: float, rho0: float) -> float:
    """``rho(t) = rho0 * (1 - (t - ti) / (tf - ti)) ** 3`` inside ``[ti, tf)``; 0 outside
    the window (nothing is designated before the adaptation starts or from ``tf`` on).

    Args:
        t (float): The current step.
        ti (float): First step of the adaptation window.
        tf (float): End of the window (excluded).
        rho0 (float): Fraction designated at ``ti``.

    Returns:
        float: ``rho(t)``.
    """
    if t < ti or t >= tf:
        return 0.0
    return float(rho0) * cubic_remaining(t, ti, tf)


def num_designated(t: float, ti: float, tf: float, rho0: float, num_blocks: int) -> int:
    """``k_t = ceil(rho(t) * G)`` (0 outside ``[ti, tf)``), at most ``G``.

    Args:
        t (float): The current step.
        ti (float): First step of the adaptation window.
        tf (float): End of the window (excluded).
        rho0 (float): Fraction designated at ``ti``.
        num_blocks (int): ``G``, the number of blocks.

    Returns:
        int: ``k_t``, the number of blocks designated.
    """
    return ceil_count(designation_fraction(t, ti, tf, rho0) * num_blocks, num_blocks)


# --------------------------------------------------------------------------- LMA
def selection_scores(weight_groups: torch.Tensor, grad_groups: torch.Tensor,
                     criterion: str = 'taylor') -> torch.Tensor:
    """Per-weight score of keeping it: ``|w * g|`` (``'taylor'``, the first-order estimate
    of the loss change) or ``|w|`` (``'magnitude'``). ``[G, M]`` float32.

    Args:
        weight_groups (Tensor): ``[G, M]`` weights.
        grad_groups (Tensor): ``[G, M]`` gradients (unused for ``'magnitude'``).
        criterion (str): One of :data:`CRITERIA`. Defaults to ``'taylor'``.

    Returns:
        Tensor: ``[G, M]`` float32 scores.
    """
    if criterion == 'taylor':
        return (weight_groups.detach().float() * grad_groups.detach().float()).abs()
    if criterion == 'magnitude':
        return weight_groups.detach().float().abs()
    raise ValueError(f'`criterion` must be one of {CRITERIA}, got {criterion!r}')


def lma_select(scores: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """The top-``n`` of each row of ``scores`` (``[G, M]``) as a bool mask.

    Ties: a weight already kept by ``mask`` first, then the lowest index. So a row whose
    current mask is already a top-``n`` set keeps it (no change for a zero gain).

    Args:
        scores (Tensor): ``[G, M]`` scores (:func:`selection_scores`).
        mask (Tensor): ``[G, M]`` bool current mask.
        n (int): Weights kept per row.

    Returns:
        Tensor: ``[G, M]`` bool mask with ``n`` True per row.
    """
    g, m = scores.shape
    # order 1: kept weights first, each part by index (stable)
    pre = torch.sort((~mask).to(torch.int8), dim=1, stable=True)[1]
    # order 2: by score, descending, stable -> ties keep order 1
    order = torch.sort(scores.gather(1, pre), dim=1, descending=True, stable=True)[1]
    top = pre.gather(1, order[:, :n])
    new = torch.zeros(g, m, dtype=torch.bool, device=scores.device)
    new.scatter_(1, top, True)
    return new


def mask_gain(scores: torch.Tensor, new_mask: torch.Tensor,
              old_mask: torch.Tensor) -> torch.Tensor:
    """Expected loss reduction of moving each row from ``old_mask`` to ``new_mask``: the
    score sum of the new mask minus that of the old one, clipped at 0. ``[G]``.

    Args:
        scores (Tensor): ``[G, M]`` scores.
        new_mask (Tensor): ``[G, M]`` bool mask after the move.
        old_mask (Tensor): ``[G, M]`` bool mask before it.

    Returns:
        Tensor: ``[G]`` float32 gains, >= 0.
    """
    s = scores.float()
    gain = (s * new_mask).sum(dim=1) - (s * old_mask).sum(dim=1)
    return gain.clamp_min(0.0)


# --------------------------------------------------------------------------- OBF
def mask_code(mask: torch.Tensor) -> torch.Tensor:
    """Each row of a ``[G, M]`` bool mask as an int64 bit pattern ``sum_i mask[i] << i``.

    Args:
        mask (Tensor): ``[G, M]`` bool mask.

    Returns:
        Tensor: ``[G]`` int64 codes.

    Raises:
        ValueError: ``M`` above :data:`MAX_CODE_BITS`.
    """
    m = mask.shape[1]
    if m > MAX_CODE_BITS:
        raise ValueError(f'mask_code: `m` must be <= {MAX_CODE_BITS} (int64 bit pattern), '
                         f'got m={m}')
    bits = torch.ones(m, dtype=torch.int64, device=mask.device) << torch.arange(
        m, dtype=torch.int64, device=mask.device)
    return (mask.to(torch.int64) * bits).sum(dim=1)


def oscillated(new_code: torch.Tensor, code: torch.Tensor,
               prev_code: torch.Tensor) -> torch.Tensor:
    """A block oscillates when its new mask equals the one it had two observations ago
    (``prev_code``) and differs from the last (``code``). ``[G]`` bool.

    Args:
        new_code (Tensor): ``[G]`` int64 codes of the new masks (:func:`mask_code`).
        code (Tensor): ``[G]`` codes of the last observation.
        prev_code (Tensor): ``[G]`` codes of the observation before it.

    Returns:
        Tensor: ``[G]`` bool, True where the block oscillates.
    """
    return (new_code == prev_code) & (new_code != code)


def oscillation_frequency(osc_count: torch.Tensor, n_obs: torch.Tensor) -> torch.Tensor:
    """``osc = oscillations / observations`` (0 for a block never observed). ``[G]``
    float32.

    Args:
        osc_count (Tensor): ``[G]`` oscillations counted per block.
        n_obs (Tensor): ``[G]`` observations per block.

    Returns:
        Tensor: ``[G]`` float32 frequencies.
    """
    return osc_count.float() / n_obs.clamp_min(1).float()


def freeze_decision(osc_count: torch.Tensor, n_obs: torch.Tensor, min_obs: int,
                    tau: float) -> torch.Tensor:
    """OBF: freeze the blocks observed at least ``min_obs`` times whose oscillation
    frequency is at least ``tau``. ``[G]`` bool.

    Args:
        osc_count (Tensor): ``[G]`` oscillations counted per block.
        n_obs (Tensor): ``[G]`` observations per block.
        min_obs (int): Observations needed before a block may freeze.
        tau (float): Oscillation frequency that freezes a block.

    Returns:
        Tensor: ``[G]`` bool, True for the blocks to freeze.
    """
    return (n_obs >= min_obs) & (oscillation_frequency(osc_count, n_obs) >= tau)


# --------------------------------------------------------------------------- designation
def designation_scores(gain_est: torch.Tensor, osc: torch.Tensor,
                       frozen: torch.Tensor) -> torch.Tensor:
    """Joint score ``J = gain_est * (1 - osc)``; ``+inf`` for blocks never measured
    (``gain_est`` NaN: they rank first, so every block is visited), ``-inf`` for frozen
    ones. ``[G]`` float32.

    Args:
        gain_est (Tensor): ``[G]`` last measured gains, NaN where never measured.
        osc (Tensor): ``[G]`` oscillation frequencies.
        frozen (Tensor): ``[G]`` bool, the frozen blocks.

    Returns:
        Tensor: ``[G]`` float32 scores ``J``.
    """
    gain = gain_est.float()
    never = torch.isnan(gain)
    j = torch.nan_to_num(gain * (1.0 - osc.float()), nan=0.0)
    j = torch.where(never, torch.full_like(j, float('inf')), j)
    return torch.where(frozen, torch.full_like(j, float('-inf')), j)


def designate(gain_est: torch.Tensor, osc: torch.Tensor, frozen: torch.Tensor,
              k: int) -> torch.Tensor:
    """The top-``k`` unfrozen blocks by :func:`designation_scores` (ties: lowest index
    first); fewer when fewer than ``k`` are unfrozen. ``[G]`` bool.

    Args:
        gain_est (Tensor): ``[G]`` last measured gains, NaN where never measured.
        osc (Tensor): ``[G]`` oscillation frequencies.
        frozen (Tensor): ``[G]`` bool, the frozen blocks.
        k (int): Number of blocks to designate.

    Returns:
        Tensor: ``[G]`` bool, the designated blocks.
    """
    j = designation_scores(gain_est, osc, frozen)
    k = max(0, min(int(k), int((~frozen).sum())))
    order = torch.sort(j, descending=True, stable=True)[1]
    out = torch.zeros_like(frozen, dtype=torch.bool)
    out[order[:k]] = True
    return out


# --------------------------------------------------------------------------- one update
class EvolutionResult(NamedTuple):
    """New block state after :func:`evolve_blocks` (all fresh tensors)."""
    mask: torch.Tensor  # [G, M] bool
    designated: torch.Tensor  # [G] bool, for the next interval
    frozen: torch.Tensor  # [G] bool
    code: torch.Tensor  # [G] int64
    prev_code: torch.Tensor  # [G] int64
    n_obs: torch.Tensor  # [G] int64
    osc_count: torch.Tensor  # [G] int64
    gain_est: torch.Tensor  # [G] float32, NaN = never measured
    changed: torch.Tensor  # [G] bool: the block's mask changed


def evolve_blocks(weight_groups: torch.Tensor, grad_groups: torch.Tensor,
                  mask: torch.Tensor, designated: torch.Tensor, frozen: torch.Tensor,
                  code: torch.Tensor, prev_code: torch.Tensor, n_obs: torch.Tensor,
                  osc_count: torch.Tensor, gain_est: torch.Tensor, *, n: int, k: int,
                  criterion: str = 'taylor', freeze_min_obs: int = 3,
                  tau: float = 0.5) -> EvolutionResult:
    """One BAME update on ``[G, M]`` groups; the inputs are not modified.

    1. LMA in each designated, unfrozen block: the new mask is the top-``n`` of
       :func:`selection_scores` (``grad_groups`` is the mean gradient over the interval);
       the block's measured gain (:func:`mask_gain`) replaces its ``gain_est``.
    2. Oscillation: each adapted block is observed once more (``n_obs``), and counts an
       oscillation when :func:`oscillated`; ``prev_code``/``code`` shift.
    3. OBF: :func:`freeze_decision` (frozen blocks stay frozen).
    4. Designation of the next interval: :func:`designate` with ``k`` blocks.

    Args:
        weight_groups (Tensor): ``[G, M]`` weights.
        grad_groups (Tensor): ``[G, M]`` mean gradients over the interval.
        mask (Tensor): ``[G, M]`` bool current mask.
        designated (Tensor): ``[G]`` bool, the blocks designated for this update.
        frozen (Tensor): ``[G]`` bool, the frozen blocks.
        code (Tensor): ``[G]`` int64 mask codes of the last observation.
        prev_code (Tensor): ``[G]`` int64 mask codes of the observation before it.
        n_obs (Tensor): ``[G]`` observations per block.
        osc_count (Tensor): ``[G]`` oscillations counted per block.
        gain_est (Tensor): ``[G]`` last measured gains, NaN where never measured.
        n (int): Weights kept per block.
        k (int): Number of blocks designated for the next interval.
        criterion (str): One of :data:`CRITERIA`. Defaults to ``'taylor'``.
        freeze_min_obs (int): Observations needed before a block may freeze. Defaults to 3.
        tau (float): Oscillation frequency that freezes a block. Defaults to 0.5.

    Returns:
        EvolutionResult: The new block state.
    """
    active = designated & ~frozen
    scores = selection_scores(weight_groups, grad_groups, criterion)
    selected = lma_select(scores, mask, n)
    new_mask = torch.where(active[:, None], selected, mask)
    gain = mask_gain(scores, new_mask, mask)
    gain_est = torch.where(active, gain, gain_est.float())

    new_code = torch.where(active, mask_code(new_mask), code)
    osc_now = active & oscillated(new_code, code, prev_code)
    osc_count = osc_count + osc_now.to(osc_count.dtype)
    n_obs = n_obs + active.to(n_obs.dtype)
    prev_code = torch.where(active, code, prev_code)

    frozen = frozen | freeze_decision(osc_count, n_obs, freeze_min_obs, tau)
    osc = oscillation_frequency(osc_count, n_obs)
    designated = designate(gain_est, osc, frozen, k)
    changed = (new_mask != mask).any(dim=1)
    return EvolutionResult(new_mask, designated, frozen, new_code, prev_code, n_obs,
                           osc_count, gain_est, changed)
