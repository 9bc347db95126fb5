"""lbc_mmdet."""
