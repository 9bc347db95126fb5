"""The method registry and the layer protocol every method shares: a name is registered
once (a clash is a clear error, not a silent overwrite), a method's options are validated
by a classmethod (no layer, no stand-in), the display metadata is given once at
registration, and an EMA copy of a layer gets its mask state through the protocol."""
import ast
import glob
import os.path as osp
import re

import pytest
import torch
from mmdet.registry import MODELS

from lbc_mmdet.engine import SparsityConfigError, validate_sparsity_cfg
from lbc_mmdet.layers import (
    DENSE,
    NMSparseConv2d,
    NMSparseLinear,
    NMSparseMixin,
    RegistrationError,
    display_name,
    get_method,
    layer_class,
    method_names,
    plot_style,
    register_method,
    register_nm_layer,
    unregister_method,
)
from lbc_mmdet.nm import from_groups, to_groups, topn_magnitude_mask

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KEY = 'regtoy'


def _toy_mixin(key: str = KEY):
    class RegToyMixin(NMSparseMixin):
        nm_method = key
        nm_extra_state_names = ('mask', )

        def _nm_init_state(self) -> None:
            groups = topn_magnitude_mask(to_groups(self.weight.detach(), self.nm_m),
                                         self.nm_n)
            self.register_buffer('mask', from_groups(groups, self.weight.shape))

        def _nm_mask(self) -> torch.Tensor:
            return self.mask

    return RegToyMixin


def _define_conv(mixin, name: str = 'RegToyConv2d'):
    """A concrete Conv2d class of ``mixin`` named ``name`` (same qualname every call)."""
    return type(name, (mixin, NMSparseConv2d), {'__qualname__': name,
                                                '__module__': __name__})


@pytest.fixture
def clean():
    """Leaves no method of this module registered."""
    yield
    unregister_method(KEY)
    unregister_method('regclash')
    assert KEY not in method_names() and MODELS.get('RegToyConv2d') is None


# ----------------------------------------------------------------- name clashes
def test_registering_a_method_name_twice_fails():
    """Another module taking a registered key: a clear error, the registry unchanged."""
    taken = method_names()[0]
    owner = get_method(taken)
    before = dict(owner.layers)
    with pytest.raises(RegistrationError, match=rf"N:M method '{taken}' is already "
                       rf'registered by {owner.module}; .* choose another'):
        register_method(taken, display_name='Impostor')
    with pytest.raises(RegistrationError, match=rf"N:M method '{taken}' is already "
                       rf'registered by {owner.module}; {re.escape(__name__)}\.RegToyConv2d '
                       'cannot register under the same key'):
        register_nm_layer(_define_conv(_toy_mixin(taken)))
    assert get_method(taken).layers == before and get_method(taken) is owner
    assert display_name(taken) != 'Impostor'
    assert MODELS.get('RegToyConv2d') is None
    assert MODELS.get(before['Conv2d'].__name__) is before['Conv2d']


def test_a_layer_type_name_taken_by_another_class_fails(clean):
    taken = layer_class(method_names()[0], 'Conv2d')
    register_method('regclash', display_name='Clash')
    with pytest.raises(RegistrationError, match=rf"layer type '{taken.__name__}' is "
                       r"already registered in mmdet's MODELS by "
                       rf'{taken.__module__}\.{taken.__qualname__}: rename'):
        register_nm_layer(_define_conv(_toy_mixin('regclash'), taken.__name__))
    assert MODELS.get(taken.__name__) is taken
    assert get_method('regclash').layers == {}


def test_another_layer_of_the_same_kind_fails_and_the_same_definition_is_accepted(clean):
    register_method(KEY, display_name='Reg toy', plot_style=('h', 'tab:pink'))
    mixin = _toy_mixin()
    first = register_nm_layer(_define_conv(mixin))
    # the same definition again (its module imported anew): it replaces the first
    again = register_nm_layer(_define_conv(mixin))
    assert again is not first and MODELS.get('RegToyConv2d') is again
    assert layer_class(KEY, 'Conv2d') is again
    with pytest.raises(RegistrationError, match=rf"N:M method '{KEY}' already has a "
                       'Conv2d layer, RegToyConv2d; OtherConv2d cannot replace it'):
        register_nm_layer(_define_conv(mixin, 'OtherConv2d'))
    assert MODELS.get('OtherConv2d') is None
    # the declaration may be repeated by its own module (re-import)
    register_method(KEY, display_name='Reg toy', plot_style=('h', 'tab:pink'))
    assert get_method(KEY).layers == {'Conv2d': again}


# ----------------------------------------------------------------- display metadata
def test_display_metadata_is_given_once_at_registration(clean):
    register_method(KEY, display_name='Reg toy', plot_style=('h', 'tab:pink'))
    register_nm_layer(_define_conv(_toy_mixin()))
    assert display_name(KEY) == 'Reg toy' and plot_style(KEY) == ('h', 'tab:pink')
    assert display_name(DENSE) == 'Baseline'
    for key in method_names():  # the package's methods declare theirs
        assert display_name(key) != key or key == KEY
        assert get_method(key).module == layer_class(key, 'Conv2d').__module__


def test_a_method_registered_without_declaration_gets_defaults(clean):
    register_nm_layer(_define_conv(_toy_mixin()))
    assert display_name(KEY) == KEY and plot_style(KEY) == ('x', 'gray')


def test_no_layer_class_carries_display_metadata():
    """Display name and plot style live in the registry, not on the layer classes."""
    for key in method_names():
        for cls in get_method(key).layers.values():
            for base in cls.__mro__:
                assert not {'nm_display_name', 'nm_plot_style'} & set(vars(base)), base


# ----------------------------------------------------------------- options
def test_options_are_a_classmethod_that_sees_no_layer():
    for key in method_names():
        for cls in get_method(key).layers.values():
            assert not hasattr(cls, '_nm_configure'), cls
            # the defaults validate without a layer and name exactly the options
            assert set(cls.nm_validate_options()) >= set(cls.nm_option_names()), cls
    import lbc_mmdet.engine.validate as validate
    assert not hasattr(validate, '_Scratch')


def test_options_are_validated_the_same_way_by_layer_and_config(clean):
    register_method(KEY)

    class OptMixin(_toy_mixin()):
        LIMIT = 3

        @classmethod
        def nm_validate_options(cls, every: int = 1) -> dict:
            if not 1 <= every <= cls.LIMIT:
                raise ValueError(f'Reg toy: `every` must be in [1, {cls.LIMIT}]')
            return dict(every=every, every_twice=2 * every)

    conv = register_nm_layer(_define_conv(OptMixin))
    assert conv.nm_option_names() == ('every', )
    layer = conv(8, 8, 3, every=2)
    assert layer.every == 2 and layer.every_twice == 4
    with pytest.raises(ValueError, match=r'must be in \[1, 3\]'):
        conv(8, 8, 3, every=5)
    cfg = dict(model=dict(conv_cfg=dict(type='RegToyConv2d', every=5)))
    with pytest.raises(SparsityConfigError, match=r'^model\.conv_cfg: Reg toy: `every`'):
        validate_sparsity_cfg(cfg)
    cfg['model']['conv_cfg']['every'] = 3
    assert validate_sparsity_cfg(cfg) == 1


def test_the_former_instance_hook_is_refused_clearly(clean):
    class Legacy(_toy_mixin()):
        def _nm_configure(self, every: int = 1) -> None:
            self.every = every

    conv = register_nm_layer(_define_conv(Legacy))
    with pytest.raises(TypeError, match=r'`_nm_configure\(self, \.\.\.\)` is gone: '
                       r'.*nm_validate_options'):
        conv(8, 8, 3, every=2)


# ----------------------------------------------------------------- EMA state copy
@pytest.mark.parametrize('key', method_names())
def test_state_copy_goes_through_the_protocol(key):
    torch.manual_seed(0)
    for kind, shape in (('Conv2d', (16, 16, 3)), ('Linear', (16, 16))):
        cls = get_method(key).layers.get(kind)
        if cls is None:
            continue
        src, dst = cls(*shape), cls(*shape)
        dst_params = {k: v.clone() for k, v in dst.named_parameters()}
        buffers = dict(src.named_buffers())
        changed = []
        for name in src.nm_extra_state_names:
            buf = buffers.get(name)
            if buf is None or buf.numel() == 0:
                continue
            if buf.dtype == torch.bool:
                buf.copy_(~buf)
            else:
                buf.fill_(3)
            assert not torch.equal(dict(dst.named_buffers())[name], buf), (key, name)
            changed.append(name)
        src.nm_copy_state_to(dst)
        theirs = dict(dst.named_buffers())
        for name in changed:
            assert torch.equal(theirs[name], buffers[name]), (key, kind, name)
        for name, value in dst.named_parameters():  # parameters are the EMA's own
            assert torch.equal(value, dst_params[name]), (key, kind, name)
    # an ineligible layer (groups of M do not fit) has no state to copy: a no-op
    cls = layer_class(key, 'Conv2d')
    cls(3, 8, 3).nm_copy_state_to(cls(3, 8, 3))


def test_no_engine_module_reaches_into_layer_internals():
    for path in glob.glob(osp.join(ROOT, 'lbc_mmdet', 'engine', '**', '*.py'),
                          recursive=True):
        tree = ast.parse(open(path).read())
        bad = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute)
               and n.attr in ('_buffers', '_parameters')]
        assert not bad, f'{path}:{bad}'


def test_linear_layers_register_too(clean):
    mixin = _toy_mixin()
    lin = register_nm_layer(type('RegToyLinear', (mixin, NMSparseLinear),
                                 {'__qualname__': 'RegToyLinear', '__module__': __name__}))
    assert layer_class(KEY, 'Linear') is lin and MODELS.get('RegToyLinear') is lin
    unregister_method(KEY)
    assert MODELS.get('RegToyLinear') is None
