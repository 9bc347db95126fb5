"""Checkpoint converters from other N:M codebases (plain torch)."""
from .official_lbc import convert_official_lbc

__all__ = ['convert_official_lbc']
