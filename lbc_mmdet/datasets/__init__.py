"""Datasets: the bundled synthetic COCO-format shapes dataset."""
from .demo_coco import (
                        DEMO_CLASSES,
                        DEMO_PALETTE,
                        ann_file_path,
                        format_summary,
                        make_demo_coco,
                        validate_coco,
)

__all__ = [
    'DEMO_CLASSES', 'DEMO_PALETTE', 'ann_file_path', 'format_summary',
    'make_demo_coco', 'validate_coco'
]
