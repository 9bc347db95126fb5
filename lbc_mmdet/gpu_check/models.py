"""The GPU check's models in plain torch: a ResNet (torchvision's layout and parameter
names, which are those of mmdet's ResNet without the ``backbone.`` prefix) and an FPN
neck. The bare GPU machine has no mmcv ops, so ``mmdet.models`` cannot be imported there;
nothing here needs more than torch.
"""
import copy
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..deploy.lowering import plan_layer
from ..nm import from_groups, to_groups, topn_magnitude_mask

#: Blocks per stage of a ResNet-50.
RESNET50_BLOCKS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    """torchvision's ``Bottleneck`` (stride on the 3x3 conv, as mmdet's ``pytorch``
    style)."""
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


class ResNet(nn.Module):
    """A ResNet backbone returning the four stage outputs (C2..C5).

    Args:
        blocks (Sequence[int]): Blocks per stage (ResNet-50: ``(3, 4, 6, 3)``).
        width (int): Channels of the stem and of the first stage's bottlenecks (64).
    """

    def __init__(self, blocks: Sequence[int] = RESNET50_BLOCKS, width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes, self.out_channels = width, []
        for i, n in enumerate(blocks):
            planes = width * 2**i
            stage = [Bottleneck(inplanes, planes, 1 if i == 0 else 2)]
            inplanes = planes * Bottleneck.expansion
            stage += [Bottleneck(inplanes, planes) for _ in range(n - 1)]
            setattr(self, f'layer{i + 1}', nn.Sequential(*stage))
            self.out_channels.append(inplanes)
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode='fan_out', nonlinearity='relu')

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outs = []
        for i in range(len(self.out_channels)):
            x = getattr(self, f'layer{i + 1}')(x)
            outs.append(x)
        return tuple(outs)


class FPN(nn.Module):
    """The FPN of mmdet's Faster R-CNN: 1x1 lateral convs, top-down nearest upsampling,
    3x3 output convs (with bias), ``out_channels`` each."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1)
                                           for c in in_channels)
        self.fpn_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                       for _ in in_channels)

    def forward(self, feats: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        lat = [conv(f) for conv, f in zip(self.lateral_convs, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:],
                                                    mode='nearest')
        return tuple(conv(x) for conv, x in zip(self.fpn_convs, lat))


class BackboneNeck(nn.Module):
    """``neck(backbone(x))`` under mmdet's attribute names."""

    def __init__(self, backbone: ResNet, out_channels: int = 256):
        super().__init__()
        self.backbone = backbone
        self.neck = FPN(backbone.out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return self.neck(self.backbone(x))


class Classifier(nn.Module):
    """A backbone with a global-pool + linear head: what part (c) trains."""

    def __init__(self, backbone: ResNet, num_classes: int = 10):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1].float().mean(dim=(2, 3)))


def resnet50() -> ResNet:
    """A randomly initialised ResNet-50 backbone."""
    return ResNet(RESNET50_BLOCKS, 64)


def eligible_convs(model: nn.Module) -> List[Tuple[str, nn.Conv2d]]:
    """Convs whose input channels group by 4 (``groups == 1``): what 2:4 can cover."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)
            and m.groups == 1 and m.in_channels % 4 == 0]


@torch.no_grad()
def make_2to4_(model: nn.Module) -> List[str]:
    """Keep the 2 largest ``|w|`` of every group of 4 input channels of every eligible
    conv (the project's grouping), in place: an exported 2:4 model. Returns the names."""
    names = []
    for name, conv in eligible_convs(model):
        w = conv.weight
        mask = from_groups(topn_magnitude_mask(to_groups(w, 4), 2), w.shape)
        w.mul_(mask.to(w.dtype))
        names.append(name)
    return names


@torch.no_grad()
def calibrate_bn_(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``x``'s activations (one
    training-mode forward, cumulative average), then put ``model`` in eval mode: keeps a
    randomly initialised network's activations normalised, so fp16 neither overflows nor
    underflows along it."""
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None
    model.train()
    model(x)
    model.eval()
    return model


def gemm_shapes(model: nn.Module, batch: int, size: Tuple[int, int],
                dtype: torch.dtype = torch.float16,
                backend: str = 'cusparselt') -> List[Dict]:
    """``name, kind, M, K, N`` of every conv of ``model`` that lowers to a 2:4 GEMM
    (:func:`~lbc_mmdet.deploy.lowering.plan_layer`, weights not checked) for a
    ``[batch, 3, *size]`` input; shapes come from a forward on the meta device."""
    meta = copy.deepcopy(model).to('meta').eval()
    shapes: Dict[str, List[int]] = {}
    hooks = [mod.register_forward_pre_hook(
        lambda m, args, name=name: shapes.__setitem__(name, list(args[0].shape)))
        for name, mod in meta.named_modules() if isinstance(mod, nn.Conv2d)]
    with torch.no_grad():
        meta(torch.empty(batch, 3, *size, device='meta'))
    for hk in hooks:
        hk.remove()
    out = []
    for name, mod in meta.named_modules():
        if not isinstance(mod, nn.Conv2d) or name not in shapes:
            continue
        plan = plan_layer(mod, name=name, dtype=dtype, backend=backend, check_weight=False)
        if plan.accelerated:
            out.append(dict(name=name, kind=plan.kind, **plan.gemm_shape(shapes[name])))
    return out


def distinct_shapes(shapes: Sequence[Dict]) -> List[Dict]:
    """One entry per distinct ``(M, K, N)``, with the layers that have it."""
    by_shape: Dict[Tuple[int, int, int], Dict] = {}
    for s in shapes:
        key = (s['M'], s['K'], s['N'])
        entry = by_shape.setdefault(key, dict(M=key[0], K=key[1], N=key[2], layers=[]))
        entry['layers'].append(s['name'])
    return list(by_shape.values())
