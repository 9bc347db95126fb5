"""Top-N by pairwise ranks: the one definition of "the N largest of a group, ties to the
earlier entry" (the order of a stable descending sort) that the input-dimension masks
(:mod:`.masks`), the output-dimension masks (:mod:`.transposed`) and the compiled kernels
(:mod:`.kernels`) share."""
import torch


def pairwise_topn_along(a: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """Bool: the top ``n`` of every group of entries along ``dim`` of ``a``, ranked by
    pairwise comparisons of its slices (an entry's rank is how many of its group beat it:
    larger, or equal and earlier, the stable sort's order; kept iff below ``n``).
    ``M (M - 1) / 2`` comparisons, each over ``1 / M`` of ``a`` (``M = a.shape[dim]``).

    Args:
        a (Tensor): The values ranked (larger first).
        n (int): Entries kept per group.
        dim (int): The dimension that runs over the ``M`` entries of a group.

    Returns:
        Tensor: Bool, shaped like ``a``.
    """
    m = a.shape[dim]
    cols = a.unbind(dim)
    rank = [torch.zeros(cols[0].shape, dtype=torch.uint8, device=a.device)
            for _ in range(m)]
    for p in range(m):
        for q in range(p + 1, m):
            earlier_wins = cols[p] >= cols[q]
            rank[q] += earlier_wins
            rank[p] += ~earlier_wins
    return torch.stack([r < n for r in rank], dim=dim)
