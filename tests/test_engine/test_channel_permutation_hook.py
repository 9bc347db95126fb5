"""ChannelPermutationHook in a real MMEngine Runner: load dense weights -> permute -> ASP
prunes at ti=0; report JSON; EMA copy permuted alike; not again on resume."""
import json
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from _nm_toy import toy_runner_kwargs
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import Dataset

import lbc_mmdet  # noqa: F401  (registers the layers and hooks)
from lbc_mmdet.deploy.channel_permutation import PermutationError
from lbc_mmdet.engine import ChannelPermutationHook
from lbc_mmdet.engine.hooks.channel_permutation_hook import check_optimizer_state
from lbc_mmdet.nm import kept_magnitude


class TinyResNet(BaseModel):
    """mmdet's ResNet-50 layout at 8 base channels (16 Bottlenecks, conv3 included)."""

    def __init__(self, conv_cfg=None):
        super().__init__()
        from mmdet.models.backbones import ResNet
        self.backbone = ResNet(depth=50, base_channels=8, init_cfg=None, conv_cfg=conv_cfg,
                               norm_eval=False)

    def forward(self, inputs, targets=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, (list, tuple)) else inputs
        out = self.backbone(x)[-1].mean(dim=(2, 3))[:, :8]
        if mode == 'loss':
            t = torch.stack(targets) if isinstance(targets, (list, tuple)) else targets
            return dict(loss=F.mse_loss(out, t))
        return out


class TinyImages(Dataset):

    def __init__(self, size=4):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(size, 3, 32, 32, generator=g)
        self.y = torch.randn(size, 8, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


@HOOKS.register_module(force=True)
class PermutationProbe(Hook):
    """Records the state between the permutation (ABOVE_NORMAL, 40) and NMSparsityHook's
    prune (NORMAL, 50), and right after the prune."""
    priority = 45

    def __init__(self):
        self.seen = {}

    def before_train(self, runner):
        model = runner.model
        self.seen['pruned'] = [bool(lay.pruned) for _, lay in lbc_mmdet.sparse_layers(model)
                               if lay.nm_eligible]
        self.seen['weights'] = {k: v.detach().clone() for k, v in model.state_dict().items()
                                if k.endswith('weight')}
        ema = [h for h in runner.hooks if type(h).__name__ == 'EMAHook']
        if ema:
            self.seen['ema'] = {k: v.detach().clone() for k, v in
                                ema[0].ema_model.module.state_dict().items()
                                if k.endswith('weight')}


@HOOKS.register_module(force=True)
class AfterPruneProbe(Hook):
    priority = 55

    def __init__(self):
        self.kept = {}

    def before_train(self, runner):
        for name, lay in lbc_mmdet.sparse_layers(runner.model):
            if lay.nm_eligible:
                self.kept[name] = (bool(lay.pruned), float(lay.masked_weight().abs().sum()))


def _runner(work_dir, load_from=None, resume=False, max_iters=2, ema=True):
    init_default_scope('mmdet')
    model = TinyResNet(conv_cfg=dict(type='ASPConv2d', n=2, m=4))
    hooks = [dict(type='NMSparsityHook', ti=0, tf=1),
             dict(type='ChannelPermutationHook', time_limit=1.0),
             dict(type='PermutationProbe'), dict(type='AfterPruneProbe')]
    if ema:
        hooks.append(dict(type='EMAHook', momentum=0.5, priority=49))
    kwargs = toy_runner_kwargs(work_dir, max_iters=max_iters, custom_hooks=hooks,
                               ckpt_interval=2, name='perm')
    kwargs['train_dataloader']['dataset'] = TinyImages()
    return Runner(model=model, load_from=load_from, resume=resume, **kwargs)


def _hook(runner, cls):
    return [h for h in runner.hooks if isinstance(h, cls)][0]


@pytest.fixture(scope='module')
def dense_checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    model = TinyResNet()
    path = tmp_path_factory.mktemp('dense') / 'dense.pth'
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path), {k: v.clone() for k, v in model.state_dict().items()}


def test_load_permute_then_prune(dense_checkpoint, tmp_path):
    path, dense = dense_checkpoint
    runner = _runner(str(tmp_path), load_from=path)
    runner.train()
    hook = _hook(runner, ChannelPermutationHook)
    probe = _hook(runner, PermutationProbe)
    after = _hook(runner, AfterPruneProbe)
    report = hook.report
    assert report['summary']['layers'] == 32 and report['summary']['permuted'] > 0
    assert report['summary']['kept_after'] > report['summary']['kept_before']
    # between the hooks: permuted (from the loaded dense weights), not pruned yet
    assert probe.seen['pruned'] and not any(probe.seen['pruned'])
    w = probe.seen['weights']
    for e in report['layers']:
        if e['identity']:
            continue
        key = e['name'] + '.weight'
        assert not torch.equal(w[key], dense[key])
        assert kept_magnitude(w[key], 2, 4) == pytest.approx(e['kept_after'], rel=1e-6)
        assert kept_magnitude(dense[key], 2, 4) == pytest.approx(e['kept_before'],
                                                                 rel=1e-6)
        # the producer's rows moved with it
        prod = e['producer'] + '.weight'
        assert sorted(w[prod].flatten().tolist()) == sorted(dense[prod].flatten().tolist())
    # the EMA copy got the same permutation
    for key, value in w.items():
        torch.testing.assert_close(probe.seen['ema'][key], value)
    # then ASP pruned the permuted weights: what it kept is the searched kept magnitude
    for e in report['layers']:
        pruned, kept = after.kept[e['name']]
        assert pruned and kept == pytest.approx(e['kept_after'], rel=1e-5)
    with open(osp.join(runner.log_dir, 'channel_permutation.json')) as f:
        saved = json.load(f)
    assert saved['summary'] == pytest.approx(report['summary'])
    assert {e['name'] for e in saved['layers']} >= {'backbone.layer1.0.conv2',
                                                    'backbone.layer4.2.conv3'}

    # a resume does not permute again
    resumed = _runner(str(tmp_path), resume=True, max_iters=3, ema=False)
    resumed.train()
    assert resumed.iter == 3 and _hook(resumed, ChannelPermutationHook).report is None


def test_optimizer_state_is_checked():
    model = TinyResNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    class Wrapper:
        optimizer = opt

    check_optimizer_state(model, ['backbone.layer1.0.conv2'], Wrapper())  # empty: fine
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    opt.step()
    with pytest.raises(PermutationError, match='optimizer already holds state'):
        check_optimizer_state(model, ['backbone.layer1.0.conv2'], Wrapper())


def test_bad_arguments():
    with pytest.raises(ValueError, match='both n and m'):
        ChannelPermutationHook(n=2)
    assert ChannelPermutationHook.priority == 'ABOVE_NORMAL'
