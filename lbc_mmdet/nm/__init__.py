"""N:M sparsity maths in plain torch: grouping, combinations, masks, schedules, BAME's
mask evolution, channel permutations.

Nothing here imports mmengine or mmdet, so it can be tested and reused on its own.
"""
from .activation_scores import activation_score_mask, activation_scores
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
from .incremental import (
                           INCREMENTAL_SCHEDULES,
                           axis_soft_mask,
                           floor_count,
                           incremental_pruned,
                           multi_axis_soft_factor,
                           remaining_fraction,
)
from .kernels import (
                           COMPILE_MODES,
                           candidate_grad_fused,
                           compile_mode,
                           decay_pruned_fused,
                           fused_available,
                           rank_mask_fused,
                           set_compile_mode,
                           topn_mask_fused,
)
from .layer_inputs import (
                           InputStatistics,
                           conv_input_columns,
                           linear_input_columns,
                           matrix_to_weight,
                           relative_output_error,
                           weight_matrix,
)
from .masks import (
                           candidate_magnitude,
                           candidate_mask,
                           count_nonzero_per_group,
                           is_nm_sparse,
                           topn_magnitude_mask,
                           topn_magnitude_mask_like,
)
from .obs import damped_inverse_cholesky, obs_prune
from .permutation import (
                           PermutationResult,
                           channel_matrix,
                           kept_magnitude,
                           permute_input_channels,
                           search_permutation,
)
from .pruners import ONE_SHOT_CRITERIA, criterion_needs, prune_weight
from .schedule import (
                           ceil_count,
                           cubic_fraction,
                           cubic_remaining,
                           cubic_removed,
                           removal_schedule_error,
                           window_progress,
)
from .transposed import (
                           best_output_permutation,
                           kept_by_output_groups,
                           output_dim_counts,
                           output_dim_nm_mask,
                           output_group_error,
                           random_permutations,
)

__all__ = [
    'MAX_COMBINATIONS', 'combination_table', 'num_combinations', 'validate_pattern',
    'CRITERIA', 'MAX_CODE_BITS', 'designate', 'designation_fraction',
    'designation_scores', 'evolve_blocks', 'freeze_decision', 'lma_select', 'mask_code',
    'mask_gain', 'num_designated', 'oscillated', 'oscillation_frequency',
    'selection_scores', 'assign_groups', 'from_groups', 'group_size_error',
    'grouped_product', 'num_groups', 'to_groups', 'INCREMENTAL_SCHEDULES',
    'axis_soft_mask', 'floor_count', 'incremental_pruned', 'multi_axis_soft_factor',
    'remaining_fraction', 'candidate_magnitude',
    'candidate_mask', 'count_nonzero_per_group', 'is_nm_sparse', 'topn_magnitude_mask',
    'topn_magnitude_mask_like',
    'PermutationResult', 'channel_matrix', 'kept_magnitude', 'permute_input_channels',
    'search_permutation', 'ceil_count', 'cubic_fraction', 'cubic_remaining', 'cubic_removed',
    'removal_schedule_error', 'window_progress',
    'best_output_permutation', 'kept_by_output_groups', 'output_dim_counts',
    'output_dim_nm_mask', 'output_group_error', 'random_permutations',
    'activation_score_mask', 'activation_scores', 'InputStatistics', 'conv_input_columns',
    'linear_input_columns', 'matrix_to_weight', 'relative_output_error', 'weight_matrix',
    'damped_inverse_cholesky', 'obs_prune', 'ONE_SHOT_CRITERIA', 'criterion_needs',
    'prune_weight', 'COMPILE_MODES', 'candidate_grad_fused', 'compile_mode',
    'decay_pruned_fused', 'fused_available', 'rank_mask_fused', 'set_compile_mode',
    'topn_mask_fused'
]
