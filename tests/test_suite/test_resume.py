"""A suite killed halfway resumes: the finished (run, seed) jobs are skipped, the one that
was interrupted trains again (from its last checkpoint with ``--resume``), the rest
follow."""
import os
import os.path as osp

import pytest
from test_runner import SEEDED, fake_runner

from lbc_mmdet.suite.results import read_result
from lbc_mmdet.suite.runner import SuiteRunner


def test_a_suite_killed_halfway_resumes_with_its_finished_runs_skipped(tmp_path,
                                                                        monkeypatch):
    runner, calls, out = fake_runner(tmp_path, monkeypatch, body=SEEDED)
    real_run_one = SuiteRunner.run_one
    started = []

    def run_one(self, job, index=1, total=1):
        started.append((job.run.label, job.seed))
        if len(started) == 3:  # Ctrl-C / kill while the third job trains
            wd = self.work_dir(job.run, job.seed)
            os.makedirs(wd)
            with open(osp.join(wd, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(wd, 'iter_2.pth'))
            raise KeyboardInterrupt
        return real_run_one(self, job, index, total)

    monkeypatch.setattr(SuiteRunner, 'run_one', run_one)
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    root = str(tmp_path / 'root')
    assert read_result(osp.join(root, 'baseline', 'seed1')).status == 'done'
    assert read_result(osp.join(root, 'lbc_2of4', 'seed0')) is None  # killed: no result

    # the same command again: two jobs skipped, the killed one and the rest train
    monkeypatch.setattr(SuiteRunner, 'run_one', real_run_one)
    runner2, calls2, out2 = fake_runner(tmp_path, monkeypatch, body=SEEDED, resume=True)
    assert [a for _, a in runner2.plan()] == ['skip'] * 2 + ['run'] * 4
    results, failed = runner2.run()
    assert [(c[0], c[1]) for c in calls2] == [('LBC 2:4', 0), ('LBC 2:4', 1),
                                              ('SR-STE 2:4', 0), ('SR-STE 2:4', 1)]
    assert not failed and [r.status for r in results] == ['done'] * 6
    text = out2.getvalue()
    assert '(1/6) Baseline (seed 0): skip' in text and '(2/6) Baseline (seed 1): skip' in text
    # a third call trains nothing
    runner3, calls3, _ = fake_runner(tmp_path, monkeypatch, body=SEEDED)
    runner3.run()
    assert calls3 == []


def test_the_interrupted_job_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """With ``--resume`` the job whose work dir holds a ``last_checkpoint`` gets
    ``--resume``; a job never started does not (the real command line)."""
    runner, _, _ = fake_runner(tmp_path, monkeypatch, body=SEEDED, resume=True)
    monkeypatch.undo()  # the real `command`
    jobs = runner.jobs()
    wd = runner.work_dir(jobs[2].run, jobs[2].seed)
    os.makedirs(wd)
    with open(osp.join(wd, 'last_checkpoint'), 'w') as f:
        f.write('iter_2.pth')
    cmd, _ = runner.command(jobs[2])
    assert '--resume' in cmd and cmd[cmd.index('--work-dir') + 1] == wd
    assert '--resume' not in runner.command(jobs[3])[0]
    # and every job is paired: the sampler seed, the data-order record, its predictions
    opts = cmd[cmd.index('--cfg-options') + 1:]
    assert 'randomness.seed=0' in opts and 'train_dataloader.sampler.seed=0' in opts
    assert 'default_hooks.data_order.type=DataOrderHook' in opts
    assert f'val_evaluator.outfile_prefix={osp.join(wd, "predictions", "val")}' in opts
