"""2:4 values + metadata packing (lbc_mmdet.deploy.packing)."""
import pytest
import torch
from torch.sparse._semi_structured_conversions import (
    sparse_semi_structured_from_dense_cutlass,
    sparse_semi_structured_to_dense_cutlass,
)

from lbc_mmdet.deploy.packing import (
    COL_MULTIPLE,
    LAYOUT,
    ROW_MULTIPLE,
    Packed2to4,
    count_2to4_violations,
    from_gemm_matrix,
    gemm_matrix,
    pack_2to4,
    unpack_2to4,
)
from lbc_mmdet.nm import combination_table, from_groups, to_groups

DTYPES = [torch.float16, torch.bfloat16, torch.float32]
BITS = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}


def r50_backbone_shapes():
    """Every distinct weight shape of the R50 backbone that N:M can group (in % 4 == 0)."""
    from mmdet.models.backbones import ResNet
    model = ResNet(depth=50, init_cfg=None)
    shapes = {tuple(m.weight.shape) for m in model.modules()
              if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] % 4 == 0}
    return sorted(shapes)


R50_SHAPES = r50_backbone_shapes()


def random_nm(shape, dtype, n=2, m=4, seed=0):
    """A random weight with exactly ``n`` non-zeros in each group of ``m`` (+0.0 zeros),
    non-zero values drawn away from 0 so that none rounds to zero."""
    gen = torch.Generator().manual_seed(seed)
    numel = torch.Size(shape).numel()
    table = combination_table(n, m)
    keep = table[torch.randint(0, table.shape[0], (numel // m,), generator=gen)]
    values = (torch.rand(numel // m, m, generator=gen) + 0.5)
    values = values * (torch.randint(0, 2, (numel // m, m), generator=gen) * 2 - 1)
    groups = torch.where(keep, values, torch.zeros(())).to(dtype)
    return from_groups(groups, shape)


def bits(t):
    return t.contiguous().view(BITS[t.dtype])


def test_r50_shapes_are_the_expected_set():
    assert len(R50_SHAPES) == 19
    assert (64, 64, 3, 3) in R50_SHAPES and (2048, 1024, 1, 1) in R50_SHAPES
    assert all(s[1] % 4 == 0 for s in R50_SHAPES)


# fp16 (the deployment dtype) on every R50 shape; bf16 takes the same converter path
# (16-bit values) and fp32 the position-code path: a representative subset for those
# (1x1, 3x3, a downsample and the largest 3x3) keeps the test fast


@pytest.mark.parametrize('dtype,shapes', [(torch.float16, R50_SHAPES),
                                          (torch.bfloat16, R50_SHAPES),
                                          (torch.float32, R50_SHAPES)],
                         ids=['fp16', 'bf16', 'fp32'])
def test_round_trip_is_bit_exact_for_r50_shapes(dtype, shapes):
    assert set(shapes) <= set(R50_SHAPES)
    for i, shape in enumerate(shapes):
        w = random_nm(shape, dtype, seed=i)
        packed = pack_2to4(w)
        rows, cols = gemm_matrix(w).shape
        assert packed.gemm_shape == (rows, cols)
        assert packed.values.dtype == dtype and packed.meta.dtype == torch.int16
        r, c = packed.padded_shape
        assert r % ROW_MULTIPLE == 0 and c % COL_MULTIPLE == 0
        assert packed.values.shape == (r, c // 2) and packed.meta.shape == (r, c // 16)
        back = unpack_2to4(packed)
        assert back.shape == w.shape and back.dtype == dtype
        assert torch.equal(bits(back), bits(w)), shape


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=str)
def test_fp16_bf16_are_pytorchs_cutlass_layout(dtype):
    w = random_nm((128, 64, 3, 3), dtype)
    packed = pack_2to4(w)
    values, meta = sparse_semi_structured_from_dense_cutlass(gemm_matrix(w).contiguous())
    assert torch.equal(bits(packed.values), bits(values))
    assert torch.equal(packed.meta, meta)
    dense = sparse_semi_structured_to_dense_cutlass(packed.values, packed.meta)
    assert torch.equal(bits(dense), bits(gemm_matrix(w).contiguous()))


def test_fp32_uses_the_fp16_metadata_and_value_order():
    w = random_nm((256, 128, 1, 1), torch.float32)
    p32, p16 = pack_2to4(w), pack_2to4(w.half())
    assert torch.equal(p32.meta, p16.meta)
    assert torch.equal(bits(p32.values.half()), bits(p16.values))


def test_padding_is_recorded_and_removed():
    for shape in [(3, 256), (81, 1024), (256, 12), (10, 8, 3, 3)]:
        w = random_nm(shape, torch.float16)
        packed = pack_2to4(w)
        rows, cols = gemm_matrix(w).shape
        assert packed.padding == ((-rows) % 32, (-cols) % 64)
        assert torch.equal(bits(unpack_2to4(packed)), bits(w))


def test_sparser_patterns_and_special_values_pack():
    # 1:4 and 2:8 keep at most 2 of every 4 consecutive weights
    for n, m in [(1, 4), (2, 8), (1, 16)]:
        w = random_nm((64, 64), torch.float16, n=n, m=m)
        assert torch.equal(bits(unpack_2to4(pack_2to4(w))), bits(w))
    # groups with 0 or 1 non-zero, subnormals, inf, nan; -0.0 comes back as +0.0
    w = torch.zeros(32, 64)
    w[0, :4] = torch.tensor([0.0, 1e-40, 0.0, float('inf')])
    w[1, 4:8] = torch.tensor([float('nan'), 0.0, 0.0, -0.0])
    w[2, 8:12] = torch.tensor([-0.0, -3.5, 0.0, 0.0])
    back = unpack_2to4(pack_2to4(w))
    kept = w != 0
    assert torch.equal(bits(back[kept | w.isnan()]), bits(w[kept | w.isnan()]))
    assert not torch.signbit(back[~kept & ~w.isnan()]).any()


def test_refusals():
    w = random_nm((64, 64), torch.float16)
    w[0, :4] = 1.0  # 4 non-zeros in a group
    with pytest.raises(ValueError, match='not 2:4 sparse: 1 of'):
        pack_2to4(w)
    with pytest.raises(ValueError, match='not a multiple of 4'):
        pack_2to4(torch.zeros(8, 6))
    with pytest.raises(ValueError, match='cannot pack'):
        pack_2to4(torch.zeros(8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match='2-D'):
        pack_2to4(torch.zeros(8, 8, 3))


def test_gemm_matrix_rows_hold_the_nm_groups():
    w = torch.randn(6, 8, 3, 3)
    matrix = gemm_matrix(w)
    assert matrix.shape == (6, 72)
    assert torch.equal(matrix.reshape(-1, 4), to_groups(w, 4))
    assert torch.equal(from_gemm_matrix(matrix, w.shape), w)
    assert count_2to4_violations(gemm_matrix(random_nm((6, 8, 3, 3), torch.float32))) == 0


def test_to_dict_round_trip_through_the_safe_loader(tmp_path):
    w = random_nm((96, 64, 3, 3), torch.bfloat16)
    packed = pack_2to4(w)
    torch.save(packed.to_dict(), tmp_path / 'p.pth')
    data = torch.load(tmp_path / 'p.pth', weights_only=True)
    assert data['layout'] == LAYOUT
    again = Packed2to4.from_dict(data)
    assert torch.equal(bits(unpack_2to4(again)), bits(w))
    dense_bytes = w.numel() * w.element_size()
    assert packed.nbytes() == dense_bytes // 2 + dense_bytes // 16  # values + 4 bits/group
