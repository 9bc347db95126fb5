"""N:M sparsity maths in plain torch: grouping, combinations, masks, schedules.

Nothing here imports mmengine or mmdet, so it can be tested and reused on its own.
"""
from .combinations import combination_table, num_combinations, validate_pattern
from .grouping import (from_groups, group_size_error, grouped_product, assign_groups,
                       num_groups, to_groups)
from .masks import (candidate_mask, candidate_magnitude, count_nonzero_per_group,
                    is_nm_sparse, topn_magnitude_mask)
from .schedule import cubic_removed, removal_schedule_error

__all__ = [
    'combination_table', 'num_combinations', 'validate_pattern', 'to_groups',
    'from_groups', 'grouped_product', 'assign_groups', 'num_groups', 'group_size_error', 'candidate_mask',
    'candidate_magnitude', 'topn_magnitude_mask', 'count_nonzero_per_group',
    'is_nm_sparse', 'cubic_removed', 'removal_schedule_error'
]
from .evolution import (designate, designation_fraction, designation_scores,  # noqa: E402
                        evolve_blocks, freeze_decision, lma_select, mask_code, mask_gain,
                        num_designated, oscillated, oscillation_frequency,
                        selection_scores)

__all__ += [
    'designate', 'designation_fraction', 'designation_scores', 'evolve_blocks',
    'freeze_decision', 'lma_select', 'mask_code', 'mask_gain', 'num_designated',
    'oscillated', 'oscillation_frequency', 'selection_scores'
]
