"""Triton kernels against their PyTorch references (CPU interpreter without a GPU, CUDA with one).

Element-wise kernels must match the reference bitwise under the interpreter (same float32 ops in
the same order, round-to-nearest-even stores). On CUDA, where Triton may fuse multiply-adds, and for
the reduction everywhere, the kernel's max error against a float64 reference must be no worse than
twice the reference's own error, plus one float32 ulp of the largest reference value.
"""

import math
import os

import pytest
import torch

from forecache.kernels import (
    backend_for,
    dispatch,
    guarded_weighted_sum,
    relative_l1,
    taylor_update_,
    weighted_sum,
)
from forecache.kernels.dispatch import triton_available
from forecache.kernels.torch_ops import (
    torch_guarded_weighted_sum,
    torch_relative_l1,
    torch_taylor_update_,
    torch_weighted_sum,
)

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cpu" if INTERPRETED else "cuda"
pytestmark = pytest.mark.skipif(
    not triton_available() or not (INTERPRETED or torch.cuda.is_available()),
    reason="needs triton and either CUDA or TRITON_INTERPRET=1",
)

DTYPES = [torch.float32, torch.bfloat16, torch.float16]
SHAPES = [(1,), (7,), (2048,), (4099,), (2, 37, 24)]  # 2048 = 2 full blocks; 4099 prime, ragged tail
WEIGHTS = [0.7, -1.3, 2.1, 0.05, -0.6, 1.9, -2.2, 0.3]


@pytest.fixture(autouse=True)
def force_triton(monkeypatch):
    monkeypatch.setenv("FORECACHE_KERNELS", "triton")


def make(shape, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen).to(dtype).to(DEVICE)


def check_error(got, ref_out, ref64, what):
    """Triton's max error vs float64 is no worse than 2x the reference's (+ 1 fp32 ulp)."""
    err = (got.double() - ref64).abs().max().item()
    ref_err = (ref_out.double() - ref64).abs().max().item()
    floor = torch.finfo(torch.float32).eps * ref64.abs().max().item()
    assert err <= 2 * ref_err + floor, (
        f"{what}: max|triton - fp64| = {err:.3e} > 2 * {ref_err:.3e} + {floor:.3e}"
    )


def check_elementwise(got, ref_out, ref64, what):
    if INTERPRETED:
        diff = (got.double() - ref_out.double()).abs().max().item()
        assert torch.equal(got, ref_out), f"{what}: not bitwise equal, max diff {diff:.3e}"
    check_error(got, ref_out, ref64, what)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8])
def test_weighted_sum(dtype, shape, k):
    tensors = [make(shape, dtype, seed) for seed in range(k)]
    got = weighted_sum(tensors, WEIGHTS[:k])
    ref_out = torch_weighted_sum(tensors, WEIGHTS[:k])
    w32 = [float(torch.tensor(w, dtype=torch.float32)) for w in WEIGHTS[:k]]
    ref64 = sum(t.double() * w for t, w in zip(tensors, w32, strict=True))
    assert got.shape == shape and got.dtype == dtype and got.device.type == DEVICE
    check_elementwise(got, ref_out, ref64, f"weighted_sum {dtype} {shape} K={k}")


def test_weighted_sum_runs_triton_path(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the torch reference ran instead of the Triton kernel")

    monkeypatch.setattr(dispatch, "TORCH_OPS", dispatch.KernelOps("torch", refuse, refuse, refuse, refuse))
    x = make((5,), torch.float32, 0)
    assert backend_for(x) == "triton"
    assert torch.equal(weighted_sum([x, x], [1.0, 1.0]), x + x)


def test_weighted_sum_out_alias_and_noncontiguous():
    a = make((37, 24), torch.bfloat16, 1)
    b = make((24, 37), torch.bfloat16, 2).T  # non-contiguous
    expected = torch_weighted_sum([a, b], [0.5, -1.5])
    got = weighted_sum([a, b], [0.5, -1.5], out=a)
    assert got is a
    diff = (got.float() - expected.float()).abs().max().item()
    assert torch.equal(got, expected) if INTERPRETED else diff <= 2**-7 * expected.abs().max().item(), diff
    with pytest.raises(ValueError, match="`out` must be contiguous"):
        weighted_sum([b], [1.0], out=torch.empty_like(b))


def poisoned(shape, dtype, k):
    """K inputs whose last one holds NaN, inf and out-of-range values at scattered positions."""
    tensors = [make(shape, dtype, seed) for seed in range(k)]
    flat = tensors[-1].view(-1)
    flat[::5] = 1e4
    flat[1::7] = math.nan
    flat[2::11] = -math.inf
    return tensors


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (2048,), (4099,), (2, 37, 24)])
@pytest.mark.parametrize(("k", "fallback"), [(1, 0), (2, 0), (3, 2), (5, 0)])
def test_guarded_weighted_sum(dtype, shape, k, fallback):
    tensors = poisoned(shape, dtype, k)
    limit = torch.tensor(3.0, device=DEVICE)
    got_count = torch.tensor(5, dtype=torch.int64, device=DEVICE)  # counts accumulate
    ref_count = got_count.clone()
    got = guarded_weighted_sum(tensors, WEIGHTS[:k], fallback, limit, got_count)
    ref = torch_guarded_weighted_sum(tensors, WEIGHTS[:k], fallback, limit, ref_count)
    what = f"guarded_weighted_sum {dtype} {shape} K={k} fallback={fallback}"
    assert got.shape == shape and got.dtype == dtype, what
    plain = torch_weighted_sum([t.float() for t in tensors], WEIGHTS[:k])  # the unrounded float32 sum
    refused = ~(plain.abs() <= 3.0)
    if INTERPRETED:  # bitwise but for NaN payloads
        assert torch.equal(got.nan_to_num(7.0), ref.nan_to_num(7.0)) and got.isnan().equal(ref.isnan()), what
    assert int(got_count) == int(ref_count) == 5 + int(refused.sum()), what
    # refused elements hold the fallback's value exactly, accepted ones the plain weighted sum
    source = tensors[fallback]
    assert torch.equal(got[refused].nan_to_num(7.0), source[refused].nan_to_num(7.0)), what
    assert got[refused].isnan().equal(source[refused].isnan()), what
    assert torch.equal(got[~refused], plain[~refused].to(dtype)), what


def test_guarded_weighted_sum_checks_its_guard_arguments():
    x = make((7,), torch.float32, 0)
    limit = torch.tensor(1.0, device=DEVICE)
    count = torch.zeros((), dtype=torch.int64, device=DEVICE)
    with pytest.raises(ValueError, match=r"`fallback` must be in \[0, 1\], got 2"):
        guarded_weighted_sum([x, x], [1.0, 1.0], 2, limit, count)
    with pytest.raises(TypeError, match=r"`limit` must be a one-element torch\.float32 tensor"):
        guarded_weighted_sum([x], [1.0], 0, limit.double(), count)
    with pytest.raises(TypeError, match=r"`refused` must be a 0-d or 1-d torch\.int64 counter"):
        guarded_weighted_sum([x], [1.0], 0, limit, count.int())
    with pytest.raises(ValueError, match="`limit` must have one element, got 2"):
        guarded_weighted_sum([x], [1.0], 0, torch.ones(2, device=DEVICE), count)
    with pytest.raises(ValueError, match=r"`slot` must be in \[0, 0\], got 1"):
        guarded_weighted_sum([x], [1.0], 0, limit, count, slot=1)
    with pytest.raises(ValueError, match=r"`limit_scale` must be a finite float > 0, got 0\.0"):
        guarded_weighted_sum([x], [1.0], 0, limit, count, limit_scale=0.0)
    with pytest.raises(
        ValueError, match=r"`addend` must have the shape of `tensors\[0\]` \(7,\), got \(8,\)"
    ):
        guarded_weighted_sum([x], [1.0], 0, limit, count, addend=make((8,), torch.float32, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (4099,), (2, 37, 24)])
def test_guarded_weighted_sum_scale_slot_and_addend(dtype, shape):
    tensors = [make(shape, dtype, 20 + i) for i in range(3)]
    addend = make(shape, dtype, 30)
    peak = torch.tensor(0.9, device=DEVICE)
    counters = torch.zeros(5, dtype=torch.int64, device=DEVICE)
    ref_counters = counters.clone()
    args = (tensors, WEIGHTS[:3], 2, peak)
    extra = {"limit_scale": 1.5, "slot": 3, "addend": addend}
    got = guarded_weighted_sum(*args, counters, **extra)
    want = torch_guarded_weighted_sum(*args, ref_counters, **extra)
    assert torch.equal(got, want), f"{dtype} {shape}: max diff {(got.float() - want.float()).abs().max()}"
    assert torch.equal(counters, ref_counters) and counters[3] > 0 and counters.sum() == counters[3]
    plain = torch_weighted_sum(tensors, WEIGHTS[:3]).float()
    acc = sum(t.float() * w for t, w in zip(tensors, WEIGHTS[:3], strict=True))
    accepted = acc.abs() <= 0.9 * 1.5
    assert int(counters[3]) == int((~accepted).sum())
    expected = torch.where(accepted, plain, tensors[2].float()) + addend.float()
    tolerance = 2 * torch.finfo(dtype).eps * expected.abs().max().item() + 1e-6
    assert (got.float() - expected).abs().max().item() <= tolerance


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("orders", [1, 3])
def test_taylor_update_tracks_the_peak_magnitude(dtype, orders):
    shape = (2, 37, 24)
    feature = make(shape, dtype, 40)
    feature.view(-1)[100] = -7.5  # the largest magnitude, negative
    factors = [make(shape, dtype, 41 + i) for i in range(orders)]
    ref_factors = [f.clone() for f in factors]
    peak = torch.tensor(1.0, device=DEVICE)
    ref_peak = peak.clone()
    taylor_update_(factors, feature, [0.5] * (orders - 1), peak)
    torch_taylor_update_(ref_factors, feature, [0.5] * (orders - 1), ref_peak)
    assert peak.item() == ref_peak.item() == 7.5
    assert all(torch.equal(a, b) for a, b in zip(factors, ref_factors, strict=True))
    taylor_update_(factors, feature * 0.5, [0.5] * (orders - 1), peak)
    assert peak.item() == 7.5  # a running maximum: never lowered
    feature.view(-1)[5] = float("nan")
    taylor_update_(factors, feature, [0.5] * (orders - 1), peak)
    assert peak.item() == float("inf")  # NaN switches the magnitude limit off


@pytest.mark.parametrize("factor_dtype", DTYPES)
@pytest.mark.parametrize("feature_dtype", DTYPES)
@pytest.mark.parametrize("orders", [1, 2, 3, 4])
@pytest.mark.parametrize("shape", [(4099,), (2, 37, 24)])
def test_taylor_update(factor_dtype, feature_dtype, orders, shape):
    factors = [make(shape, factor_dtype, 10 + i) for i in range(orders)]
    ref_factors = [f.clone() for f in factors]
    old64 = [f.double() for f in factors]
    feature = make(shape, feature_dtype, 99)
    inv_dt = [1.0 / (0.3 + 0.7 * i) for i in range(orders - 1)]
    taylor_update_(factors, feature, inv_dt)
    torch_taylor_update_(ref_factors, feature, inv_dt)
    new64 = feature.double()
    for i in range(orders):
        what = f"taylor_update_ factors[{i}] {factor_dtype} feature {feature_dtype} orders={orders} {shape}"
        check_elementwise(factors[i], ref_factors[i], new64, what)
        if i < orders - 1:
            new64 = (new64 - old64[i]) * float(torch.tensor(inv_dt[i], dtype=torch.float32))


def test_taylor_update_noncontiguous_feature_and_refused_factor():
    factors = [make((24, 37), torch.float16, i) for i in range(2)]
    ref_factors = [f.clone() for f in factors]
    feature = make((37, 24), torch.float32, 5).T
    taylor_update_(factors, feature, [0.5])
    torch_taylor_update_(ref_factors, feature, [0.5])
    for got, ref in zip(factors, ref_factors, strict=True):
        diff = (got.float() - ref.float()).abs().max().item()
        assert torch.equal(got, ref) if INTERPRETED else diff <= 2**-10 * ref.abs().max().item(), diff
    bad = [factors[0], make((37, 24), torch.float16, 3).T]
    with pytest.raises(ValueError, match=r"`factors\[1\]` must be contiguous"):
        taylor_update_(bad, feature, [0.5])


# per_sample on (4099,) would be 4099 one-element rows, one (slow) interpreter program each; (7,) covers it.
L1_CASES = [(s, False) for s in [*SHAPES, (3, 4099)]] + [
    (s, True) for s in [(1,), (7,), (3, 4099), (2, 37, 24)]
]


@pytest.mark.parametrize("a_dtype", DTYPES)
@pytest.mark.parametrize(("shape", "per_sample"), L1_CASES)
def test_relative_l1(a_dtype, shape, per_sample):
    a = make(shape, a_dtype, 1)
    b = make(shape, torch.bfloat16, 2)  # mixed input dtypes
    got = relative_l1(a, b, per_sample=per_sample)
    ref_out = torch_relative_l1(a, b, per_sample=per_sample)
    dims = tuple(range(1, len(shape))) if per_sample else tuple(range(len(shape)))
    a64, b64 = a.double(), b.double()
    ref64 = (a64 - b64).abs().sum(dims) / b64.abs().sum(dims)
    assert got.dtype == torch.float32 and got.shape == ref_out.shape
    check_error(got, ref_out, ref64, f"relative_l1 {a_dtype} {shape} per_sample={per_sample}")


def test_relative_l1_noncontiguous_and_zero_denominator():
    a = make((24, 37), torch.float32, 1).T
    b = make((24, 37), torch.float32, 2).T
    got, ref = relative_l1(a, b, per_sample=True), torch_relative_l1(a, b, per_sample=True)
    diff = (got - ref).abs().max().item()
    assert diff <= 4 * torch.finfo(torch.float32).eps * ref.abs().max().item(), diff
    zero = torch.zeros(2, 3, device=DEVICE)
    assert relative_l1(zero, zero).item() == 0.0
    assert relative_l1(zero + 1, zero).item() == math.inf
    rows_a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 1.0], [math.nan, 1.0]], device=DEVICE)
    rows_b = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]], device=DEVICE)
    got = relative_l1(rows_a, rows_b, per_sample=True).tolist()
    assert got[:3] == [0.0, math.inf, 0.5] and math.isnan(got[3]), got
    assert relative_l1(torch.empty(0, 4, device=DEVICE), torch.empty(0, 4, device=DEVICE)).item() == 0.0
