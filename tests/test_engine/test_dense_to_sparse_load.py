"""``load_from`` a dense checkpoint into an LBC model in a real Runner: the method's state
(``scores``, ``alive``) keeps its initial value and is reported in one line, not as
missing keys; a key that is really missing is still reported, in full.

MMEngine's ``Runner.load_checkpoint`` prints its "missing keys" message (``print_log``
without a logger), so it is read from the captured output; the hook's line is in the
log file."""
import glob
import os.path as osp
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _nm_toy import ToyNet, toy_runner_kwargs
from mmengine.hooks import Hook
from mmengine.runner import Runner

import lbc_mmdet

SUMMARY = 'initialised LBC state (scores, alive) for {} layers from a dense checkpoint'
MISSING = re.compile(r'missing keys in source state_dict: (.*)')


class ToyBNNet(ToyNet):
    """:class:`ToyNet` with a BatchNorm after its first conv."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(16)

    def forward(self, inputs, targets=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        x = F.relu(self.bn(self.conv1(x)))
        x = F.relu(self.conv2(x))
        x = self.fc(self.conv3(x).flatten(1))
        if mode == 'loss':
            t = torch.stack(targets) if isinstance(targets, (list, tuple)) else targets
            return dict(loss=F.mse_loss(x.float(), t.float()))
        return x


class LoadedState(Hook):
    """What the model holds right after the checkpoint was loaded."""
    priority = 'LOWEST'

    def before_train(self, runner):
        self.state = {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


@pytest.fixture(scope='module')
def dense_state():
    torch.manual_seed(1)
    return ToyBNNet().state_dict()


def _train_from(state, tmp_path, name, capsys):
    ckpt = str(tmp_path / f'{name}_dense.pth')
    torch.save(dict(state_dict=state, meta=dict()), ckpt)
    torch.manual_seed(0)
    model = ToyBNNet()
    assert lbc_mmdet.sparsify(model, 'lbc', n=2, m=4) == ['conv1', 'conv2', 'conv3', 'fc']
    loaded = LoadedState()
    kwargs = toy_runner_kwargs(str(tmp_path / name), max_iters=2, name=name,
                               custom_hooks=[dict(type='NMSparsityHook', ti=0, tf=2),
                                             loaded])
    kwargs.update(load_from=ckpt, log_level='INFO')
    runner = Runner(model=model, **kwargs)
    capsys.readouterr()
    runner.train()
    out = capsys.readouterr()
    log = open(glob.glob(osp.join(runner.log_dir, '*.log'))[0]).read()
    return log, out.out + out.err, loaded.state


def _missing(text):
    """The keys of every 'missing keys' line."""
    return [set(m.group(1).strip().split(', ')) for m in MISSING.finditer(text)]


def test_dense_checkpoint_initialises_the_method_state(dense_state, tmp_path, capsys):
    log, printed, loaded = _train_from(dense_state, tmp_path, 'complete', capsys)
    assert log.count(SUMMARY.format(4)) == 1
    assert 'Loads checkpoint by local backend' in printed  # MMEngine's loader printed
    for text in (log, printed):
        assert 'missing keys' not in text and 'do not match exactly' not in text
    for key, value in dense_state.items():  # the dense weights were loaded
        assert torch.equal(loaded[key], value), key
    for layer in ('conv1', 'conv2', 'conv3', 'fc'):  # the LBC state is at its start
        assert bool(loaded[f'{layer}.alive'].all())
        scores = loaded[f'{layer}.scores']
        assert torch.equal(scores, torch.full_like(scores, 1.0 / 3))  # 1 / comb(3, 1)


def test_a_missing_bn_weight_is_still_reported(dense_state, tmp_path, capsys):
    state = dict(dense_state)
    del state['bn.weight']
    log, printed, _ = _train_from(state, tmp_path, 'no_bn_weight', capsys)
    assert log.count(SUMMARY.format(4)) == 1
    assert _missing(printed) == [{'bn.weight'}]


def test_a_sparse_layer_without_its_weight_is_no_dense_init(dense_state, tmp_path, capsys):
    """Without its weight, a layer's method state is missing too, and said so."""
    state = dict(dense_state)
    del state['conv2.weight']
    log, printed, _ = _train_from(state, tmp_path, 'no_conv2_weight', capsys)
    assert log.count(SUMMARY.format(3)) == 1
    assert _missing(printed) == [{'conv2.weight', 'conv2.scores', 'conv2.alive'}]
