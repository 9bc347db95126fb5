"""Benchmark suites: train a list of runs over seeds (``tools/run_suite.py``) and lay
their results out like the paper's Tables 2 and 3 (``results.md``, ``results.csv``,
``results.png``).

:mod:`.spec` reads suite files, :mod:`.runner` drives the trainings, :mod:`.results`
collects what one training wrote, :mod:`.report` aggregates the seeds and writes the
tables.
"""
from .report import (
                     Row,
                     Stat,
                     format_markdown,
                     group_rows,
                     plot_results,
                     table_rows,
                     write_csv,
)
from .results import (
                     RunResult,
                     collect_metrics,
                     collect_run,
                     load_train_flops,
                     read_result,
                     write_result,
)
from .runner import LAUNCHERS, Job, SuiteRunner, train_command
from .spec import (
                     PROTOCOLS,
                     Pretrain,
                     Suite,
                     SuiteError,
                     SuiteRun,
                     cfg_options_to_args,
                     load_suite,
                     resolve_config,
                     slugify,
)

__all__ = [
    'Row', 'Stat', 'format_markdown', 'group_rows',
    'plot_results', 'table_rows', 'write_csv', 'RunResult', 'collect_metrics',
    'collect_run', 'load_train_flops', 'read_result', 'write_result', 'LAUNCHERS', 'Job',
    'SuiteRunner', 'train_command', 'PROTOCOLS', 'Pretrain', 'Suite', 'SuiteError',
    'SuiteRun', 'cfg_options_to_args', 'load_suite', 'resolve_config', 'slugify'
]
