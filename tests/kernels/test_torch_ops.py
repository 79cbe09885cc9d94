"""The PyTorch references against closed forms, their argument checks, and the traffic counts."""

import math

import pytest
import torch

from forecache.kernels import (
    relative_l1_bytes,
    taylor_update_bytes,
    torch_relative_l1,
    torch_taylor_update_,
    torch_weighted_sum,
    weighted_sum_bytes,
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# Dyadic constants and weights: every product and partial sum is exact in all three dtypes.
CONSTS = [1.0, -2.0, 0.5, 4.0, -0.25, 3.0, 0.125, -1.5]
WEIGHTS = [0.5, 2.0, -1.0, 0.25, 1.5, -0.5, 4.0, 1.0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", range(1, 9))
def test_weighted_sum_constants(dtype, k):
    tensors = [torch.full((3, 5), c, dtype=dtype) for c in CONSTS[:k]]
    expected = sum(c * w for c, w in zip(CONSTS[:k], WEIGHTS[:k], strict=True))
    got = torch_weighted_sum(tensors, WEIGHTS[:k])
    assert got.dtype == dtype and got.shape == (3, 5)
    assert torch.equal(got, torch.full((3, 5), expected, dtype=dtype)), f"{got[0, 0].item()} != {expected}"


def test_weighted_sum_out_and_alias():
    a, b = torch.full((4,), 2.0), torch.full((4,), 3.0)
    out = torch.empty(4)
    assert torch_weighted_sum([a, b], [1.0, -1.0], out=out) is out
    assert out.tolist() == [-1.0] * 4
    torch_weighted_sum([a, b], [0.5, 1.0], out=a)
    assert a.tolist() == [4.0] * 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_taylor_update_constants(dtype):
    factors = [torch.full((6,), v, dtype=dtype) for v in (1.0, 0.5, -2.0)]
    torch_taylor_update_(factors, torch.full((6,), 3.0), [0.5, 0.25])
    # new0 = 3; new1 = (3 - 1) * 0.5 = 1; new2 = (1 - 0.5) * 0.25 = 0.125
    assert [f[0].item() for f in factors] == [3.0, 1.0, 0.125]


def test_taylor_update_divided_differences_of_quadratic():
    # Newton divided differences on a non-uniform grid recover p' coefficients exactly:
    # f[x_n, x_{n-1}] = (p(x_n) - p(x_{n-1})) / (x_n - x_{n-1}), f[x_n, x_{n-1}, x_{n-2}] = c2.
    def p(x):
        return 0.75 * x * x - 2.0 * x + 1.0

    xs = [0.0, 0.5, 1.5, 3.0]
    factors = [torch.zeros(4) for _ in range(3)]
    for n, x in enumerate(xs):
        inv_dt = [1.0 / (x - xs[n - i - 1]) if n - i - 1 >= 0 else 0.0 for i in range(2)]
        torch_taylor_update_(factors, torch.full((4,), p(x)), inv_dt)
    first = (p(3.0) - p(1.5)) / 1.5
    assert factors[0][0].item() == p(3.0)
    assert math.isclose(factors[1][0].item(), first, rel_tol=1e-6), factors[1][0].item()
    assert math.isclose(factors[2][0].item(), 0.75, rel_tol=1e-6), factors[2][0].item()


def test_taylor_update_single_order():
    factors = [torch.zeros(3, dtype=torch.bfloat16)]
    torch_taylor_update_(factors, torch.tensor([1.0, 2.0, 3.0]), [])
    assert factors[0].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_relative_l1_constants(dtype):
    a, b = torch.full((2, 3, 4), 3.0, dtype=dtype), torch.full((2, 3, 4), 2.0, dtype=dtype)
    got = torch_relative_l1(a, b)
    assert got.dtype == torch.float32 and got.shape == () and got.item() == 0.5
    b[1] = -4.0  # row 0: |1| / |2| = 0.5, row 1: |7| / |4| = 1.75
    assert torch_relative_l1(a, b, per_sample=True).tolist() == [0.5, 1.75]
    assert torch_relative_l1(a, b).item() == pytest.approx((12 + 84) / (24 + 48), rel=1e-6)


def test_relative_l1_zero_denominator():
    zero = torch.zeros(2, 3)
    assert torch_relative_l1(zero, zero).item() == 0.0
    assert torch_relative_l1(torch.ones(2, 3), zero).item() == math.inf
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 1.0]])
    b = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    assert torch_relative_l1(a, b, per_sample=True).tolist() == [0.0, math.inf, 0.5]
    assert math.isnan(torch_relative_l1(torch.tensor([math.nan]), torch.ones(1)).item())


def test_traffic_counts():
    assert weighted_sum_bytes(1000, 3, 2) == 8000
    assert taylor_update_bytes(1000, 3, 2, 4) == 1000 * (4 + 5 * 2)
    assert relative_l1_bytes(1000, 2, 4) == 6000


def test_argument_errors():
    x = torch.ones(4)
    with pytest.raises(ValueError, match="`tensors` must be a non-empty"):
        torch_weighted_sum([], [])
    with pytest.raises(ValueError, match="`weights` must have 2 entries, got 1"):
        torch_weighted_sum([x, x], [1.0])
    with pytest.raises(TypeError, match=r"`tensors\[1\]` must have dtype float32, bfloat16 or float16"):
        torch_weighted_sum([x, x.double()], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"`tensors\[1\]` must have the shape of `tensors\[0\]`"):
        torch_weighted_sum([x, torch.ones(5)], [1.0, 1.0])
    with pytest.raises(TypeError, match=r"`weights\[0\]` must be a real number"):
        torch_weighted_sum([x], ["1"])
    with pytest.raises(ValueError, match="`out` must be contiguous"):
        torch_weighted_sum([torch.ones(2, 3)], [1.0], out=torch.empty(3, 2).T)
    base = torch.zeros(8)
    with pytest.raises(ValueError, match=r"`out` partially overlaps `tensors\[0\]`"):
        torch_weighted_sum([base[:4]], [1.0], out=base[2:6])
    with pytest.raises(ValueError, match=r"`inv_dt` must have 1 entries, got 0"):
        torch_taylor_update_([x.clone(), x.clone()], x, [])
    with pytest.raises(ValueError, match=r"`factors\[1\]` must be contiguous"):
        torch_taylor_update_([torch.ones(2, 3), torch.ones(3, 2).T], torch.ones(2, 3), [1.0])
    with pytest.raises(ValueError, match=r"`feature` shares memory with `factors\[0\]`"):
        torch_taylor_update_([x], x, [])
    with pytest.raises(ValueError, match=r"`factors\[1\]` shares memory with `factors\[0\]`"):
        torch_taylor_update_([x, x], torch.ones(4), [1.0])
    with pytest.raises(ValueError, match="`per_sample=True` needs inputs with a batch dimension"):
        torch_relative_l1(torch.ones(()), torch.ones(()), per_sample=True)
    with pytest.raises(ValueError, match="`a` must have the shape of `b`"):
        torch_relative_l1(torch.ones(3), torch.ones(4))
