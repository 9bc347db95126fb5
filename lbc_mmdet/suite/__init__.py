"""Benchmark suites: train a list of runs (``tools/run_suite.py``) and lay their results
out like the paper's Tables 2 and 3 (``results.md``, ``results.csv``, ``results.png``).

:mod:`.spec` reads suite files, :mod:`.runner` drives the trainings, :mod:`.results`
collects what the runs wrote.
"""
from .results import (
                      RunResult,
                      collect_metrics,
                      collect_run,
                      format_markdown,
                      load_train_flops,
                      plot_results,
                      read_result,
                      table_rows,
                      write_csv,
                      write_result,
)
from .runner import LAUNCHERS, SuiteRunner, train_command
from .spec import (
                      Suite,
                      SuiteError,
                      SuiteRun,
                      cfg_options_to_args,
                      load_suite,
                      resolve_config,
                      slugify,
)

__all__ = [
    'RunResult', 'collect_metrics', 'collect_run', 'format_markdown', 'load_train_flops',
    'plot_results', 'read_result', 'table_rows', 'write_csv', 'write_result', 'LAUNCHERS',
    'SuiteRunner', 'train_command', 'Suite', 'SuiteError', 'SuiteRun',
    'cfg_options_to_args', 'load_suite', 'resolve_config', 'slugify'
]
