"""BAME: Block-Aware Mask Evolution for efficient N:M sparse training (ICML 2025).

**This is a reconstruction, not the authors' code.** The paper is known here only through
its abstract and public summaries; its code is not available. The reconstruction follows
the project's specification, ``docs/bame_spec.md``.

Confirmed by the abstract / summaries:

- sparse forward *and* sparse backward for the whole of training (no dense weight gradient
  over the full layer, unlike SR-STE);
- the mask is tailored by pruning-and-regrowing weights inside *designated blocks*; a block
  is one N:M group (M consecutive input-channel weights, the project's grouping);
- blocks are designated by a joint assessment of their accumulated mask oscillation
  frequency and the expected loss reduction of adapting their mask;
- two parts run iteratively: Loss-aware Mask Adaptation (LMA) and Oscillation-aware Block
  Freezing (OBF); the mask changes only every ``T`` iterations inside ``[ti, tf)``.

Reconstructed (every choice is an option of :meth:`BAMEMixin.nm_validate_options`, defaults in
brackets):

- the mask starts as the top-N ``|w|`` of every group;
- every iteration the weight gradient is kept on ``mask OR designated block`` only (zero
  elsewhere) and that support gradient is accumulated into ``grad_acc``;
- every ``interval`` [100] iterations (``state.iteration % interval == 0``) while
  ``ti <= t < tf``:

  1. LMA in each designated, unfrozen block: new mask = top-N of ``|w * g|`` with ``g``
     the mean accumulated gradient (``criterion='taylor'`` [default]; ``'magnitude'``:
     ``|w|``); the block's gain is the score sum of the new mask minus that of the old
     one;
  2. oscillation: a block oscillates when its new mask equals the one it had two
     observations ago and differs from the last; ``osc = oscillations / observations``;
  3. OBF: a block with ``n_obs >= freeze_min_obs`` [3] and ``osc >= tau`` [0.5] is frozen
     for good (its mask never changes, it is never designated again);
  4. designation: the top ``k_t = ceil(rho(t) * G)`` unfrozen blocks by
     ``J = gain_est * (1 - osc)``, blocks never measured first, with
     ``rho(t) = rho0 * (1 - (t - ti) / (tf - ti)) ** 3`` [``rho0 = 0.5``];
  5. ``grad_acc`` is reset;
- from ``tf`` on nothing is designated: training is fully sparse.

Decisions beyond the spec (the maths lives in :mod:`lbc_mmdet.nm.evolution`):

- The first designation happens at the first :meth:`BAMEMixin.nm_update` call inside the
  window (``NMSparsityHook`` makes one at ``before_train``), even off the ``T`` grid; the
  gradient is then averaged over the iterations actually accumulated (``T`` in steady
  state) rather than divided by ``T``.
- The initial top-N ``|w|`` mask is computed at construction *and recomputed once* at the
  first ``nm_update`` call of a layer that was not loaded from a BAME checkpoint (flag
  ``initialized``): MMEngine loads pretrained weights after building the model.
- Ties: stable sorts, lowest index first; LMA prefers a weight already kept on an exact
  tie (a block whose current mask is already a top-N set keeps it).
- The accumulation runs inside the custom autograd Function's backward, where each rank
  sees its *local* gradient (DDP averages ``weight.grad`` later). To keep every decision
  identical across ranks, ``grad_acc`` is all-reduced (mean) at each update when
  ``torch.distributed`` is initialised; as the sum is linear this equals the accumulated
  DDP-averaged gradient (MMEngine wraps with ``broadcast_buffers=False``; with ``True``
  rank 0 overwrites ``grad_acc`` at every forward: the ranks still agree, but the
  gradient is then mostly rank 0's). A checkpoint saved mid-interval holds rank 0's
  partial local sum, which every rank resumes from (the ranks still agree).
  Non-finite accumulated entries (an AMP overflow step) are treated as 0.
- AMP loss scaling and gradient accumulation: the gradient reaching the backward is
  ``nm_grad_scale`` (loss scale / accumulation loss factor, set by ``NMSparsityHook``)
  times the iteration's true gradient; it is divided by it before being added to
  ``grad_acc``, so the mean gradient, hence every gain and mask decision, is that of an
  unscaled, non-accumulated run, whatever the (dynamic) loss scale.
- Masks are stored as int64 bit patterns (``code``/``prev_code``), so ``m <= 62``.
- The optimizer still applies weight decay/momentum to weights outside the support (they
  get a zero gradient, not an untouched one); that is the optimizer's, not the layer's.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.distributed as dist

from ..errors import CheckpointMismatchError
from ..nm import (
    CRITERIA,
    MAX_CODE_BITS,
    designation_fraction,
    evolve_blocks,
    from_groups,
    mask_code,
    num_designated,
    oscillation_frequency,
    to_groups,
    topn_magnitude_mask,
)
from .base import NMScheduleState, NMSparseConv2d, NMSparseLinear, NMSparseMixin
from .registry import register_method, register_nm_layer


class _BAMEMaskedWeight(torch.autograd.Function):
    """``weight * mask``; the weight gradient is ``grad * support`` and is added to
    ``grad_acc`` (when given), divided by ``grad_scale`` (the layer's ``nm_grad_scale``)."""

    @staticmethod
    def forward(ctx, weight, mask, support, grad_acc, grad_scale=1.0):  # noqa: D102
        ctx.save_for_backward(support)
        ctx.grad_acc = grad_acc
        ctx.grad_scale = float(grad_scale)
        return weight * mask

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        support, = ctx.saved_tensors
        grad_weight = grad * support
        if ctx.grad_acc is not None:
            if ctx.grad_scale == 1.0:
                ctx.grad_acc.add_(grad_weight.detach())
            else:  # the true gradient, independent of the loss scale and accumulation
                ctx.grad_acc.add_(grad_weight.detach(), alpha=1.0 / ctx.grad_scale)
        return grad_weight, None, None, None, None


def _number(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


register_method('bame', display_name='BAME', plot_style=('D', 'tab:purple'))


class BAMEMixin(NMSparseMixin):
    """The BAME method; combine with :class:`NMSparseConv2d` / :class:`NMSparseLinear`."""
    nm_method = 'bame'
    nm_extra_state_names: Tuple[str, ...] = ('mask', 'designated', 'frozen', 'code',
                                             'prev_code', 'n_obs', 'osc_count',
                                             'gain_est', 'grad_acc', 'last_update',
                                             'initialized')

    @classmethod
    def nm_validate_options(cls,
                            interval: int = 100,
                            criterion: str = 'taylor',
                            freeze_min_obs: int = 3,
                            tau: float = 0.5,
                            rho0: float = 0.5) -> dict:
        """BAME's options (see the module docstring).

        Args:
            interval (int): ``T``, iterations between mask updates. Defaults to 100.
            criterion (str): LMA score, ``'taylor'`` (``|w * g|``) or ``'magnitude'``
                (``|w|``). Defaults to ``'taylor'``.
            freeze_min_obs (int): Observations a block needs before OBF may freeze it.
                Defaults to 3.
            tau (float): Oscillation frequency at or above which OBF freezes a block
                (values above 1 disable freezing). Defaults to 0.5.
            rho0 (float): Designated fraction at ``ti``, in ``(0, 1]``. Defaults to 0.5.

        Returns:
            dict: The five options (``tau`` and ``rho0`` as floats).
        """
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise ValueError(f'BAME: `interval` must be a positive integer (iterations), '
                             f'got {interval!r}')
        if criterion not in CRITERIA:
            raise ValueError(f'BAME: `criterion` must be one of {CRITERIA}, got '
                             f'{criterion!r}')
        if (not isinstance(freeze_min_obs, int) or isinstance(freeze_min_obs, bool)
                or freeze_min_obs < 1):
            raise ValueError(f'BAME: `freeze_min_obs` must be a positive integer, got '
                             f'{freeze_min_obs!r}')
        if not _number(tau) or not tau > 0:
            raise ValueError(f'BAME: `tau` must be a number > 0 (an oscillation '
                             f'frequency; > 1 disables freezing), got {tau!r}')
        if not _number(rho0) or not 0 < rho0 <= 1:
            raise ValueError(f'BAME: `rho0` must be a number in (0, 1], got {rho0!r}')
        return dict(interval=interval, criterion=criterion, freeze_min_obs=freeze_min_obs,
                    tau=float(tau), rho0=float(rho0))

    def _nm_init_state(self) -> None:
        m, n = self.nm_m, self.nm_n
        if m > MAX_CODE_BITS:
            raise ValueError(f'BAME: `m` must be <= {MAX_CODE_BITS} (each group\'s mask '
                             f'is kept as an int64 bit pattern), got m={m}')
        w = self.weight
        dev = w.device
        g = self.nm_num_groups
        mask = topn_magnitude_mask(to_groups(w.detach(), m), n)
        self.register_buffer('mask', mask)
        self.register_buffer('designated', torch.zeros(g, dtype=torch.bool, device=dev))
        self.register_buffer('frozen', torch.zeros(g, dtype=torch.bool, device=dev))
        self.register_buffer('code', mask_code(mask))
        self.register_buffer('prev_code', torch.full((g, ), -1, dtype=torch.int64,
                                                     device=dev))
        self.register_buffer('n_obs', torch.zeros(g, dtype=torch.int64, device=dev))
        self.register_buffer('osc_count', torch.zeros(g, dtype=torch.int64, device=dev))
        self.register_buffer('gain_est', torch.full((g, ), float('nan'),
                                                    dtype=torch.float32, device=dev))
        self.register_buffer('grad_acc', torch.zeros_like(
            w, dtype=torch.promote_types(w.dtype, torch.float32),
            memory_format=torch.contiguous_format))
        self.register_buffer('last_update', torch.tensor(-1, dtype=torch.int64,
                                                         device=dev))
        self.register_buffer('initialized', torch.tensor(False, device=dev))
        # caches, recomputed when the buffers change
        # (bool, in the weight's layout: the forward and backward use them as they are,
        # and a bool saved for the backward is a quarter of a float one)
        self.register_buffer('_wmask', torch.ones(w.shape, dtype=torch.bool, device=dev),
                             persistent=False)
        self.register_buffer('_wsupport', torch.ones(w.shape, dtype=torch.bool,
                                                     device=dev), persistent=False)
        self._cache_key = None
        self._any_designated = False
        self._num_designated = 0
        self._host_key = None
        self._host = (False, -1)

    # ----------------------------------------------------------------- state
    def _refresh(self) -> None:
        """Recompute the weight-shaped mask and support when ``mask``/``designated``
        changed (one host sync per change, none per forward otherwise)."""
        key = (self.mask.data_ptr(), self.mask._version, self.designated.data_ptr(),
               self.designated._version, self._wmask.data_ptr(),
               self._wsupport.data_ptr())
        if key == self._cache_key:
            return
        shape = self.weight.shape
        with torch.no_grad():
            support = self.mask | self.designated[:, None]
            self._wmask.copy_(from_groups(self.mask, shape))
            self._wsupport.copy_(from_groups(support, shape))
        self._num_designated = int(self.designated.sum())
        self._any_designated = self._num_designated > 0
        self._cache_key = (self.mask.data_ptr(), self.mask._version,
                           self.designated.data_ptr(), self.designated._version,
                           self._wmask.data_ptr(), self._wsupport.data_ptr())

    def _host_state(self) -> Tuple[bool, int]:
        """``(initialized, last_update)`` as Python values, re-read on change."""
        key = (self.initialized.data_ptr(), self.initialized._version,
               self.last_update.data_ptr(), self.last_update._version)
        if key != self._host_key:
            self._host = (bool(self.initialized), int(self.last_update))
            self._host_key = key
        return self._host

    @property
    def osc(self) -> torch.Tensor:
        """Cumulative oscillation frequency of every block, ``[G]``."""
        return oscillation_frequency(self.osc_count, self.n_obs)

    def _nm_refresh(self) -> None:
        self._refresh()

    def _nm_mask(self) -> torch.Tensor:
        self._refresh()
        return self._wmask.to(self.weight.dtype)

    def nm_support(self) -> torch.Tensor:
        """Where the weight gets a gradient now (``mask OR designated block``), shaped
        like ``weight`` (ones for ineligible layers)."""
        if not self.nm_eligible:
            return torch.ones_like(self.weight)
        self._refresh()
        return self._wsupport.to(self.weight.dtype)

    def _nm_forward_weight(self) -> torch.Tensor:
        self._refresh()
        if (not self._any_designated or not self.weight.requires_grad
                or not torch.is_grad_enabled()):
            # support == mask: plain autograd gives grad * mask
            return self.weight * self._wmask
        return _BAMEMaskedWeight.apply(self.weight, self._wmask, self._wsupport,
                                       self.grad_acc, self.nm_grad_scale)

    # ----------------------------------------------------------------- evolution
    @torch.no_grad()
    def _init_mask(self) -> bool:
        """Top-N ``|w|`` of the current weight (start of training)."""
        new = topn_magnitude_mask(to_groups(self.weight.detach(), self.nm_m), self.nm_n)
        changed = not torch.equal(new, self.mask)
        if changed:
            self.mask.copy_(new)
            self.code.copy_(mask_code(new))
        self.initialized.fill_(True)
        return changed

    @torch.no_grad()
    def _mean_gradient(self, iteration: int, last: int) -> torch.Tensor:
        acc = self.grad_acc
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(acc)
            acc.div_(dist.get_world_size())
        steps = iteration - last if 0 <= last < iteration else self.interval
        g = acc / steps
        return torch.where(torch.isfinite(g), g, torch.zeros_like(g))

    @torch.no_grad()
    def _evolve(self, state: NMScheduleState) -> bool:
        """One LMA / OBF / designation update at ``state``; True if a mask changed."""
        _, last = self._host_state()
        it = int(state.iteration)
        self._refresh()
        if self._any_designated and self.criterion == 'taylor':
            grad = to_groups(self._mean_gradient(it, last), self.nm_m)
        else:
            grad = torch.zeros_like(self.mask, dtype=torch.float32)
        k = num_designated(state.t, state.ti, state.tf, self.rho0, self.nm_num_groups)
        res = evolve_blocks(
            to_groups(self.weight.detach(), self.nm_m), grad, self.mask, self.designated,
            self.frozen, self.code, self.prev_code, self.n_obs, self.osc_count,
            self.gain_est, n=self.nm_n, k=k, criterion=self.criterion,
            freeze_min_obs=self.freeze_min_obs, tau=self.tau)
        changed = bool(res.changed.any())
        if changed:
            self.mask.copy_(res.mask)
        if not torch.equal(res.designated, self.designated):
            self.designated.copy_(res.designated)
        self.frozen.copy_(res.frozen)
        self.code.copy_(res.code)
        self.prev_code.copy_(res.prev_code)
        self.n_obs.copy_(res.n_obs)
        self.osc_count.copy_(res.osc_count)
        self.gain_est.copy_(res.gain_est)
        self.grad_acc.zero_()
        self.last_update.fill_(it)
        return changed

    @torch.no_grad()
    def _nm_update(self, state: NMScheduleState) -> bool:
        """Called after every training iteration. Adapts the masks every ``interval``
        iterations inside ``[ti, tf)`` (and designates the first blocks at the first call
        inside the window); clears the designation from ``tf`` on."""
        changed = False
        initialized, last = self._host_state()
        if not initialized:
            changed |= self._init_mask()
        if state.t >= state.tf:
            self._refresh()
            if self._any_designated:
                self.designated.zero_()
                self.grad_acc.zero_()
            return changed
        if state.t < state.ti:
            return changed
        started = last >= 0
        it = int(state.iteration)
        if started and (it % self.interval != 0 or it == last):
            return changed
        return self._evolve(state) or changed

    # ----------------------------------------------------------------- protocol
    @torch.no_grad()
    def designated_fraction(self) -> float:
        """``a_t``: the fraction of blocks designated now."""
        if not self.nm_eligible:
            return 0.0
        self._refresh()
        return self._num_designated / max(self.nm_num_groups, 1)

    def _nm_densities(self) -> Dict[str, float]:
        d = self.nm_n / self.nm_m
        a = self.designated_fraction()
        return dict(forward=d, input_grad=d, weight_grad=d + (1.0 - d) * a)

    @classmethod
    def nm_schedule_densities(cls, n, m, t, ti, tf, rho0: float = 0.5):
        # the designated fraction follows the schedule: rho(t) (k_t = ceil(rho(t) G) of G
        # blocks, i.e. rho(t) for large layers); `rho0` is the layer option's default
        d = n / m
        a = designation_fraction(t, ti, tf, rho0)
        return dict(forward=d, input_grad=d, weight_grad=d + (1.0 - d) * a)

    def _nm_stats(self) -> Dict[str, float]:
        return dict(designated_frac=self.designated_fraction(),
                    frozen_frac=float(self.frozen.float().mean()),
                    osc_mean=float(self.osc.mean()))

    # ----------------------------------------------------------------- loading
    def _nm_check_loaded(self, state_dict: dict, prefix: str) -> None:
        saved_mask: Optional[torch.Tensor] = state_dict.get(prefix + 'mask')
        if saved_mask is not None:
            counts = saved_mask.to(torch.int64).sum(dim=1)
            if not bool((counts == self.nm_n).all()):
                raise CheckpointMismatchError(
                    f'{prefix}mask: the checkpoint\'s mask does not keep exactly '
                    f'{self.nm_n} of every {self.nm_m} weights: it was trained with '
                    'another N:M pattern.')


@register_nm_layer
class BAMEConv2d(BAMEMixin, NMSparseConv2d):
    """N:M sparse ``nn.Conv2d`` trained with BAME (reconstruction). Use as
    ``conv_cfg=dict(type='BAMEConv2d', n=2, m=4, interval=100)``."""


@register_nm_layer
class BAMELinear(BAMEMixin, NMSparseLinear):
    """N:M sparse ``nn.Linear`` trained with BAME (reconstruction)."""
