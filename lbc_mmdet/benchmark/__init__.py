"""Benchmarks (training-step cost of the N:M methods)."""
from .training import run_training_benchmark

__all__ = ['run_training_benchmark']
