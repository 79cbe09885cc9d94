"""The divergence guard near the limits of float16 and bfloat16, on the torch and Triton paths alike.

A forecast element must be refused when its value, after the addend, would not be finite once
stored in the output dtype, though it passes the margin over the running peak: float16 rounds
values from 65520 (= 65504 + half an ulp) up to inf, bfloat16 from ``2**128 - 2**119``. The sums
below land exactly on those bounds (ties round to the even neighbour, which is inf) and one ulp
below them (the largest finite value). The Triton kernel runs in its interpreter on CPU
(``TRITON_INTERPRET=1``, set by tests/conftest.py) and must match the reference bitwise.
"""

import os

import pytest
import torch

from forecache.kernels import guarded_weighted_sum, torch_guarded_weighted_sum
from forecache.kernels.dispatch import triton_available
from forecache.kernels.torch_ops import overflow_bound

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
BACKENDS = [
    "torch",
    pytest.param(
        "triton",
        marks=pytest.mark.skipif(
            not (triton_available() and (INTERPRETED or torch.cuda.is_available())),
            reason="needs triton and either CUDA or TRITON_INTERPRET=1",
        ),
    ),
]
DEVICE = "cpu" if INTERPRETED or not torch.cuda.is_available() else "cuda"

# dtype -> (a, b), exact in that dtype: a + b is the overflow bound, b + b the largest finite value
HALVES = {
    torch.float16: (32768.0, 32752.0),
    torch.bfloat16: (2.0**127, 2.0**127 * (1 - 2**-8)),
}


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setenv("FORECACHE_KERNELS", request.param)
    return request.param


def test_overflow_bounds():
    assert overflow_bound(torch.float16) == 65520.0
    assert overflow_bound(torch.bfloat16) == 2.0**128 - 2.0**119
    assert overflow_bound(torch.float32) == float("inf")
    for dtype in (torch.float16, torch.bfloat16):
        bound = torch.tensor(overflow_bound(dtype))
        below = torch.nextafter(bound, torch.tensor(0.0))
        assert torch.isinf(bound.to(dtype)) and torch.isfinite(below.to(dtype)), dtype
        assert below.to(dtype).item() == torch.finfo(dtype).max, dtype


def _guarded(dtype, values, addend=None, out_dtype=None, count=0):
    """Guard the forecast ``values[0] + values[1]`` (fallback ``values[0]``); the limit never binds."""
    tensors = [torch.tensor(v, dtype=dtype, device=DEVICE) for v in values]
    peak = torch.tensor(torch.finfo(torch.float32).max / 2, device=DEVICE)  # x2: the largest float32
    counter = torch.full((3,), count, dtype=torch.int64, device=DEVICE)
    extra = None if addend is None else torch.tensor(addend, dtype=out_dtype or dtype, device=DEVICE)
    out = guarded_weighted_sum(
        tensors, [1.0, 1.0], 0, peak, counter, limit_scale=2.0, slot=1, addend=extra, out_dtype=out_dtype
    )
    ref_counter = torch.full((3,), count, dtype=torch.int64, device=DEVICE)
    ref = torch_guarded_weighted_sum(
        tensors, [1.0, 1.0], 0, peak, ref_counter, limit_scale=2.0, slot=1, addend=extra, out_dtype=out_dtype
    )
    assert torch.equal(out, ref), f"{dtype}: kernel {out.tolist()} != reference {ref.tolist()}"
    assert torch.equal(counter, ref_counter), (counter.tolist(), ref_counter.tolist())
    return out, counter


@pytest.mark.parametrize("dtype", list(HALVES))
def test_a_sum_that_rounds_to_inf_is_refused(backend, dtype):
    a, b = HALVES[dtype]
    top = torch.finfo(dtype).max
    # sums: the bound (inf once stored), the largest finite value, and the same two negated
    out, counter = _guarded(dtype, [[a, b, -a, -b], [b, b, -b, -b]])
    assert out.dtype == dtype and torch.isfinite(out).all(), out.tolist()
    assert out.tolist() == [a, top, -a, -top]  # the refused ones kept their last value
    assert counter.tolist() == [0, 2, 0]


@pytest.mark.parametrize("dtype", list(HALVES))
def test_the_residual_add_is_checked_too(backend, dtype):
    a, b = HALVES[dtype]
    # forecasts a, b and 0 are finite; the addend b carries the first over the bound
    out, counter = _guarded(dtype, [[a / 2, b / 2, 0.0], [a / 2, b / 2, 0.0]], addend=[b, b, 1.0])
    fallback = torch.tensor(a / 2 + b).to(dtype).item()  # the last value plus the addend
    assert out.tolist() == [fallback, torch.finfo(dtype).max, 1.0]
    assert counter.tolist() == [0, 1, 0]


@pytest.mark.parametrize("dtype", list(HALVES))
def test_a_float32_history_is_checked_against_the_features_dtype(backend, dtype):
    a, b = HALVES[dtype]
    out, counter = _guarded(torch.float32, [[a, b], [b, b]], out_dtype=dtype)
    assert out.dtype == dtype and out.tolist() == [a, torch.finfo(dtype).max]
    assert counter.tolist() == [0, 1, 0]


def test_the_counter_does_not_wrap(backend):
    a, b = HALVES[torch.float16]
    out, counter = _guarded(torch.float16, [[a] * 5, [b] * 5], count=2**31 - 2)
    assert out.tolist() == [a] * 5
    assert counter.tolist() == [2**31 - 2, 2**31 + 3, 2**31 - 2]  # int32 would have wrapped negative


def test_an_int32_counter_is_refused():
    x = torch.ones(3)
    with pytest.raises(
        TypeError, match=r"`refused` must be a 0-d or 1-d torch\.int64 counter.*got torch\.int32"
    ):
        torch_guarded_weighted_sum([x], [1.0], 0, torch.tensor(1.0), torch.zeros(1, dtype=torch.int32))
    with pytest.raises(
        TypeError, match=r"`out_dtype` must be float32, bfloat16, float16 or None, got torch\.int8"
    ):
        torch_guarded_weighted_sum(
            [x], [1.0], 0, torch.tensor(1.0), torch.zeros(1, dtype=torch.int64), out_dtype=torch.int8
        )
