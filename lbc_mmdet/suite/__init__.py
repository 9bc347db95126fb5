"""Benchmark suites: train a list of runs (``tools/run_suite.py``) and lay their results
out like the paper's Tables 2 and 3 (``results.md``, ``results.csv``, ``results.png``).

:mod:`.results` reads what the runs wrote (no mmengine needed); :mod:`.runner` loads a
suite file and drives ``tools/train.py``.
"""
from .results import (RunResult, collect_metrics, collect_run, format_markdown,
                      load_train_flops, plot_results, read_result, table_rows,
                      write_csv, write_result)
from .runner import (Suite, SuiteRun, SuiteRunner, cfg_options_to_args, load_suite,
                     slugify, train_command)

__all__ = [
    'RunResult', 'collect_metrics', 'collect_run', 'format_markdown', 'load_train_flops',
    'plot_results', 'read_result', 'table_rows', 'write_csv', 'write_result', 'Suite',
    'SuiteRun', 'SuiteRunner', 'cfg_options_to_args', 'load_suite', 'slugify',
    'train_command'
]
