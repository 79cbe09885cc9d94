"""forecache alongside half precision, torch.compile of the blocks and diffusers' own hooks."""

import pytest
import torch

import forecache
from forecache import CacheConfig, ConfidenceGateConfig, Interval, Taylor, TaylorSeerConfig
from tests.fixtures.catalog import build_tiny

STEPS = 8
# diffusers' attention dispatch (is_torch_version) cannot be traced by torch 2.5's dynamo, and torch
# 2.5's compile contexts do not record fullgraph: forecache supports regional compilation from 2.6
COMPILE = pytest.mark.skipif(
    tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 6),
    reason="regional compile needs torch>=2.6",
)


def run(tiny, dtype=torch.float32, steps=STEPS):
    inputs = tiny.make_inputs(2, torch.Generator().manual_seed(0))
    inputs = {
        k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
        for k, v in inputs.items()
    }
    with torch.no_grad():
        return [
            tiny.model(
                **inputs,
                timestep=torch.full((2,), (1000.0 - 100 * i) * tiny.timestep_scale),
                return_dict=False,
            )[0]
            for i in range(steps)
        ]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("history_dtype", ["auto", "float32"])
def test_half_precision_models(dtype, history_dtype):
    tiny = build_tiny("FluxTransformer2DModel")
    tiny.model.to(dtype)
    baseline = run(tiny, dtype)
    config = CacheConfig(Interval(every=2, warmup=2), Taylor(order=1), "modules", history_dtype=history_dtype)
    with forecache.cached(tiny.model, config, num_inference_steps=STEPS):
        cached = run(tiny, dtype)
        stats = forecache.stats(tiny.model)
    assert "".join(stats.contexts["branch0"].decisions) == "CCCFCFCC" and stats.fallbacks == 0
    assert all(o.dtype == dtype and torch.isfinite(o).all() for o in cached)
    itemsize = 4 if history_dtype == "float32" else 2
    assert stats.cache_bytes % itemsize == 0 and stats.cache_bytes > 0
    assert torch.equal(cached[0], baseline[0])


@COMPILE
def test_compiled_blocks_compile_once_and_decisions_stay_outside():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    tiny = build_tiny("DiTTransformer2DModel")
    counter = CompileCounter()
    for block in tiny.model.transformer_blocks:
        block.forward = torch.compile(block.forward, backend=counter, dynamic=False)
    baseline = run(tiny)
    frames_after_baseline = counter.frame_count
    with forecache.cached(
        tiny.model, TaylorSeerConfig(interval=3, warmup=2, target="blocks"), num_inference_steps=STEPS
    ):
        cached = run(tiny)
        decisions = "".join(forecache.stats(tiny.model).contexts["branch0"].decisions)
    assert decisions == "CCCFFCFC"
    assert counter.frame_count == frames_after_baseline, "forecache made the compiled blocks recompile"
    assert all(torch.equal(a, b) for a, b, d in zip(baseline, cached, decisions, strict=True) if d == "C")


REGIONAL = {
    "ts-blocks": TaylorSeerConfig(interval=3, warmup=2, target="blocks"),
    "ab-output": forecache.AdamsBashforthConfig(),
    "cg": ConfidenceGateConfig(threshold=0.3),
}


@COMPILE
@pytest.mark.parametrize("order", ["compile-then-apply", "apply-then-compile"])
@pytest.mark.parametrize("name", list(REGIONAL))
def test_regional_fullgraph_compile_keeps_decisions_outside_and_never_recompiles(order, name):
    """diffusers' `compile_repeated_blocks(fullgraph=True)`, before or after `apply`."""
    from torch._dynamo.testing import CompileCounter

    from tests.fixtures.sampler import TinyPipeline

    config = REGIONAL[name]
    eager = TinyPipeline.from_tiny("FluxTransformer2DModel")
    eager.set_progress_bar_config(disable=True)
    with forecache.cached(eager, config):
        expected = eager(num_inference_steps=10).latents
        expected_decisions = forecache.stats(eager).contexts["branch0"].decisions

    torch._dynamo.reset()
    plain = TinyPipeline.from_tiny("FluxTransformer2DModel")
    plain.set_progress_bar_config(disable=True)
    plain_counter = CompileCounter()
    plain.transformer.compile_repeated_blocks(backend=plain_counter, fullgraph=True)
    baseline = plain(num_inference_steps=10).latents

    torch._dynamo.reset()
    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.set_progress_bar_config(disable=True)
    counter = CompileCounter()
    blocks = [*pipe.transformer.transformer_blocks, *pipe.transformer.single_transformer_blocks]
    if order == "compile-then-apply":
        pipe.transformer.compile_repeated_blocks(backend=counter, fullgraph=True)
        compiled_calls = [block._compiled_call_impl for block in blocks]
        forecache.apply(pipe, config)
    else:
        forecache.apply(pipe, config)
        pipe.transformer.compile_repeated_blocks(backend=counter, fullgraph=True)
    first = pipe(num_inference_steps=10).latents
    frames = counter.frame_count
    second = pipe(num_inference_steps=10).latents
    decisions = forecache.stats(pipe).contexts["branch0"].decisions
    forecache.remove(pipe)
    assert frames == plain_counter.frame_count  # the blocks' graphs, as many as without forecache
    assert counter.frame_count == frames, "a cached run recompiled a block"
    assert decisions == expected_decisions and "F" in decisions
    assert torch.equal(first, expected) and torch.equal(second, expected)  # same ops as eager
    if order == "compile-then-apply":
        assert [block._compiled_call_impl for block in blocks] == compiled_calls
    assert torch.equal(pipe(num_inference_steps=10).latents, baseline)  # removed: bitwise


@COMPILE
def test_fullgraph_blocks_refuse_the_modules_target_by_name():
    from tests.fixtures.sampler import TinyPipeline

    pipe = TinyPipeline.from_tiny("FluxTransformer2DModel")
    pipe.transformer.compile_repeated_blocks(backend="eager", fullgraph=True)
    with pytest.raises(ValueError, match=r"fullgraph=True, but target='modules'"):
        forecache.apply(pipe, TaylorSeerConfig())
    assert all(b._compiled_call_impl is not None for b in pipe.transformer.transformer_blocks)


def test_diffusers_group_offloading_hooks_already_on_the_model():
    pytest.importorskip("accelerate")  # diffusers < 0.36 moves offloaded groups with accelerate
    from diffusers.hooks import apply_group_offloading

    tiny = build_tiny("SD3Transformer2DModel")
    apply_group_offloading(
        tiny.model, onload_device=torch.device("cpu"), offload_type="block_level", num_blocks_per_group=1
    )
    baseline = run(tiny)
    with forecache.cached(tiny.model, ConfidenceGateConfig(threshold=10.0), num_inference_steps=STEPS):
        cached = run(tiny)
        assert forecache.stats(tiny.model).forecast_steps > 0
    assert torch.equal(cached[0], baseline[0])
    after = run(tiny)
    assert all(torch.equal(a, b) for a, b in zip(baseline, after, strict=True))


def test_lora_weights_loaded_through_diffusers_peft_integration():
    LoraConfig = pytest.importorskip("peft").LoraConfig  # the dev extra

    tiny = build_tiny("FluxTransformer2DModel")
    base = run(tiny)
    tiny.model.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, param in tiny.model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5, generator=torch.Generator().manual_seed(len(name)))
    lora = run(tiny)
    assert not torch.equal(lora[0], base[0]), "the LoRA must change the output for this test to mean anything"
    with forecache.cached(tiny.model, TaylorSeerConfig(interval=1), num_inference_steps=STEPS):
        assert all(torch.equal(a, b) for a, b in zip(lora, run(tiny), strict=True))
    with forecache.cached(tiny.model, TaylorSeerConfig(interval=3, warmup=2), num_inference_steps=STEPS):
        cached = run(tiny)
        assert forecache.stats(tiny.model).forecast_steps == 3
    assert torch.equal(cached[0], lora[0]) and all(torch.isfinite(o).all() for o in cached)
    assert all(torch.equal(a, b) for a, b in zip(lora, run(tiny), strict=True))


def test_accelerate_offload_hooks_already_on_the_model():
    """`enable_model_cpu_offload` puts accelerate hooks on the transformer; forecache composes with them."""
    cpu_offload_with_hook = pytest.importorskip("accelerate").cpu_offload_with_hook  # the dev extra

    tiny = build_tiny("WanTransformer3DModel")
    baseline = run(tiny)
    _, offload = cpu_offload_with_hook(tiny.model, execution_device="cpu")
    offloaded = run(tiny)
    assert all(torch.equal(a, b) for a, b in zip(baseline, offloaded, strict=True))
    with forecache.cached(tiny.model, TaylorSeerConfig(interval=3, warmup=2), num_inference_steps=STEPS):
        cached = run(tiny)
        assert forecache.stats(tiny.model).forecast_steps == 3
    assert torch.equal(cached[0], baseline[0]) and all(torch.isfinite(o).all() for o in cached)
    assert hasattr(tiny.model, "_hf_hook"), "forecache.remove dropped accelerate's hook"
    assert all(torch.equal(a, b) for a, b in zip(baseline, run(tiny), strict=True))
    offload.remove()
