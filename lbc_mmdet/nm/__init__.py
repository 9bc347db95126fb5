"""N:M sparsity maths in plain torch: grouping, combinations, masks, schedules, BAME's
mask evolution, channel permutations.

Nothing here imports mmengine or mmdet, so it can be tested and reused on its own.
"""
from .combinations import (
                           MAX_COMBINATIONS,
                           combination_table,
                           num_combinations,
                           validate_pattern,
)
from .evolution import (
                           CRITERIA,
                           MAX_CODE_BITS,
                           designate,
                           designation_fraction,
                           designation_scores,
                           evolve_blocks,
                           freeze_decision,
                           lma_select,
                           mask_code,
                           mask_gain,
                           num_designated,
                           oscillated,
                           oscillation_frequency,
                           selection_scores,
)
from .grouping import (
                           assign_groups,
                           from_groups,
                           group_size_error,
                           grouped_product,
                           num_groups,
                           to_groups,
)
from .masks import (
                           candidate_magnitude,
                           candidate_mask,
                           count_nonzero_per_group,
                           is_nm_sparse,
                           topn_magnitude_mask,
                           topn_magnitude_mask_like,
)
from .permutation import (
                           PermutationResult,
                           channel_matrix,
                           kept_magnitude,
                           permute_input_channels,
                           search_permutation,
)
from .schedule import (
                           ceil_count,
                           cubic_fraction,
                           cubic_remaining,
                           cubic_removed,
                           removal_schedule_error,
                           window_progress,
)

__all__ = [
    'MAX_COMBINATIONS', 'combination_table', 'num_combinations', 'validate_pattern',
    'CRITERIA', 'MAX_CODE_BITS', 'designate', 'designation_fraction',
    'designation_scores', 'evolve_blocks', 'freeze_decision', 'lma_select', 'mask_code',
    'mask_gain', 'num_designated', 'oscillated', 'oscillation_frequency',
    'selection_scores', 'assign_groups', 'from_groups', 'group_size_error',
    'grouped_product', 'num_groups', 'to_groups', 'candidate_magnitude',
    'candidate_mask', 'count_nonzero_per_group', 'is_nm_sparse', 'topn_magnitude_mask',
    'topn_magnitude_mask_like',
    'PermutationResult', 'channel_matrix', 'kept_magnitude', 'permute_input_channels',
    'search_permutation', 'ceil_count', 'cubic_fraction', 'cubic_remaining', 'cubic_removed',
    'removal_schedule_error', 'window_progress'
]
