"""N:M masks in the grouped ``[G, M]`` layout."""
import torch


def candidate_mask(alive: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """LBC's Eq. 8: weight ``i`` of a group is kept iff it belongs to an alive candidate.

    Args:
        alive (Tensor): ``[G, C]`` bool, the surviving candidates of each group.
        table (Tensor): ``[C, M]`` bool membership table (:func:`combination_table`).

    Returns:
        Tensor: ``[G, M]`` bool mask.
    """
    return (alive.to(torch.float32) @ table.to(torch.float32)) > 0


def candidate_magnitude(groups: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Sum of ``|w|`` over each candidate: ``[G, C]``. A data-driven ranking of the
    candidates for layers whose scores cannot learn (frozen stages)."""
    return groups.detach().abs().to(torch.float32) @ table.to(torch.float32).t()


def topn_magnitude_mask(groups: torch.Tensor, n: int) -> torch.Tensor:
    """Keep the ``n`` largest ``|w|`` of each row (ties: lowest index first).

    Args:
        groups (Tensor): ``[G, M]`` weights.
        n (int): Non-zeros per group.

    Returns:
        Tensor: ``[G, M]`` bool mask with exactly ``n`` True per row.
    """
    order = torch.sort(groups.detach().abs(), dim=1, descending=True, stable=True)[1]
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(1, order[:, :n], True)
    return mask


def count_nonzero_per_group(groups: torch.Tensor) -> torch.Tensor:
    """Non-zeros of each ``[G, M]`` row."""
    return (groups != 0).sum(dim=1)


def is_nm_sparse(groups: torch.Tensor, n: int) -> bool:
    """True iff every row of ``groups`` holds at most ``n`` non-zeros."""
    return bool((count_nonzero_per_group(groups) <= n).all())
