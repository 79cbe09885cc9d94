"""Layout inference: what it decides from the model, why, and the first-call check that backs it."""

import warnings

import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention

import forecache
from forecache import AdamsBashforthConfig, ConfidenceGateConfig, TaylorSeerConfig
from forecache.accel.layout import TimeArgument, time_argument
from forecache.layouts import UnsupportedModelError, infer_layout, resolve_layout
from forecache.layouts.first_call import FIRST_CALL_HOOK
from forecache.layouts.registry import _REGISTRY
from forecache.layouts.report import compare_layouts
from tests.fixtures.catalog import build_tiny, installed_names, tiny_model_names

UNAVAILABLE = installed_names()


def tiny(name):
    if UNAVAILABLE[name]:
        pytest.skip(UNAVAILABLE[name])
    return build_tiny(name)


def lists(layout):
    return [block_list.attr for block_list in layout.block_lists]


def test_joint_sequence_glue_limits_the_chain_to_the_single_stream_list():
    inference = infer_layout(tiny("Flux2Transformer2DModel").model)
    assert lists(inference.layout) == ["transformer_blocks", "single_transformer_blocks"]
    assert lists(inference.chain) == ["single_transformer_blocks"]
    single = next(f for f in inference.lists if f.attr == "single_transformer_blocks")
    assert "torch.cat([encoder_hidden_states, hidden_states], dim=1)" in single.note
    double = inference.layout.block_lists[0]
    assert (double.hidden_index, double.encoder_index) == (1, 0)  # (txt, img) returned


def test_the_targets_that_chain_the_blocks_get_the_chain_by_their_own_flag():
    model = tiny("Flux2Transformer2DModel").model
    assert lists(resolve_layout(model, "modules").layout) == [
        "transformer_blocks",
        "single_transformer_blocks",
    ]
    import forecache.calibrate.record  # noqa: F401  (registers the tuner's "record" target)

    for target in ("blocks", "record"):  # both declare chains_blocks = True; no list of names
        resolution = resolve_layout(model, target)
        assert resolution.chained and lists(resolution.layout) == ["single_transformer_blocks"]


def test_text_refiners_are_left_alone_and_a_rising_time_is_read_negated():
    inference = infer_layout(tiny("Lumina2Transformer2DModel").model)
    refiner = next(f for f in inference.lists if f.attr == "context_refiner")
    assert not refiner.cached and "text stream only" in refiner.note
    assert lists(inference.layout) == ["noise_refiner", "layers"] and lists(inference.chain) == ["layers"]
    assert inference.time == TimeArgument(("timestep",), rises=True)


def test_time_found_by_name():
    assert infer_layout(tiny("HiDreamImageTransformer2DModel").model).time.names == ("timesteps",)
    assert infer_layout(tiny("AceStepTransformer1DModel").model).time.names == ("timestep",)  # not timestep_r


def test_interleaved_lists_keep_the_first_and_refuse_the_chain():
    inference = infer_layout(tiny("LatteTransformer3DModel").model)
    assert lists(inference.layout) == ["transformer_blocks"]
    temporal = next(f for f in inference.lists if f.attr == "temporal_transformer_blocks")
    assert not temporal.cached and "interleaved" in temporal.note
    assert inference.chain is None and "reshape" in inference.chain_refusal
    with pytest.raises(UnsupportedModelError, match=r"target='blocks'.*modules.*output"):
        resolve_layout(tiny("LatteTransformer3DModel").model, "blocks")


def test_gradient_checkpointing_branch_is_not_a_second_loop():
    inference = infer_layout(
        tiny("ChronoEditTransformer3DModel").model
    )  # `if grad and ckpt: for ... else: for`
    assert lists(inference.chain) == ["blocks"]


def test_submodules_found_by_type_that_always_run():
    sd3 = infer_layout(tiny("SD3Transformer2DModel").model).layout.block_lists[0]
    assert sd3.modules == ("attn", "ff", "ff_context")  # `if not self.context_pre_only` read on the block
    lumina = infer_layout(tiny("LuminaNextDiT2DModel").model)
    assert lumina.layout.block_lists[0].modules == ("attn1", "feed_forward")
    assert "`attn2` has a layer the block calls itself" in lumina.lists[0].note  # attn2.to_out[0](...)
    audio = infer_layout(tiny("StableAudio3DiTModel").model)
    assert "to_local_embed" not in audio.layout.block_lists[0].modules  # only under `if local_seq`


def test_metadata_says_which_of_two_returned_streams_is_the_image():
    block_list = infer_layout(tiny("Cosmos3OmniTransformer").model).chain.block_lists[0]
    assert (block_list.hidden_arg, block_list.encoder_arg) == ("gen_seq", "und_seq")
    assert (block_list.hidden_index, block_list.encoder_index) == (1, 0)


def test_inference_agrees_with_every_registered_layout():
    for name in tiny_model_names():
        model = build_tiny(name).model
        differences = compare_layouts(_REGISTRY[name], infer_layout(model).layout, model)
        structural = [d for d in differences if not d.startswith("`")]
        assert not structural, (name, structural)
        assert lists(infer_layout(model).chain) == lists(_REGISTRY[name])  # no glue in these


def test_time_argument_validates_and_normalises():
    assert time_argument("t") == TimeArgument(("t",))
    assert time_argument(("a", "b")).names == ("a", "b")
    with pytest.raises(ValueError, match="`names` must be non-empty"):
        TimeArgument(())


def test_a_rising_time_keeps_the_scheduler_clock_and_forecasts():
    model = tiny("ZImageTransformer2DModel")
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(10)
    inputs = model.make_inputs(1, torch.Generator().manual_seed(0))
    forecache.apply(model.model, AdamsBashforthConfig(), scheduler=scheduler)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        for i, t in enumerate(scheduler.timesteps):
            scheduler._step_index = i  # as `scheduler.step` would advance it
            model.model(**inputs, t=(1000 - t.expand(1)) / 1000, return_dict=False)
    assert not [w for w in caught if "step index" in str(w.message)]  # the clock kept its trust
    decisions = "".join(forecache.stats(model.model).contexts["branch0"].decisions)
    forecache.remove(model.model)
    assert decisions.count("F") >= 3 and len(decisions) == 10, decisions


# A toy transformer: inference lays it out; its optional `controlnet` input adds glue between blocks.


class ToyBlock(torch.nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.attn = Attention(query_dim=width, heads=2, dim_head=width // 2)
        self.ff = FeedForward(width)

    def forward(self, hidden_states, temb):
        attn = self.attn(hidden_states)
        attn = attn[0] if isinstance(attn, tuple) else attn
        return hidden_states + attn + self.ff(hidden_states) * temb


class OddAttention(Attention):
    def forward(self, hidden_states):
        return super().forward(hidden_states), "a note"  # a value forecache cannot record


class Toy(torch.nn.Module):
    def __init__(self, odd=False):
        super().__init__()
        torch.manual_seed(0)
        self.blocks = torch.nn.ModuleList([ToyBlock() for _ in range(3)])
        self.time = torch.nn.Linear(1, 8)
        self.proj = torch.nn.Linear(8, 8)
        if odd:
            for block in self.blocks:
                block.attn = OddAttention(query_dim=8, heads=2, dim_head=4)

    def forward(self, hidden_states, timestep, controlnet=None):
        temb = self.time(timestep[:, None, None] / 1000).tanh()
        for i, block in enumerate(self.blocks):
            hidden_states = block(hidden_states, temb)
            if controlnet is not None:
                hidden_states = hidden_states + controlnet[i]
        return (self.proj(hidden_states),)


def toy_run(model, steps=6, **extra):
    x = torch.randn(1, 4, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return [model(x, torch.tensor([1000.0 - 150 * i]), **extra)[0] for i in range(steps)]


def test_a_toy_transformer_is_laid_out_and_engages():
    model = Toy()
    inference = infer_layout(model)
    assert lists(inference.layout) == lists(inference.chain) == ["blocks"]
    assert inference.layout.block_lists[0].modules == ("attn", "ff")
    for config in (
        TaylorSeerConfig(interval=2, warmup=1),
        AdamsBashforthConfig(),
        ConfidenceGateConfig(threshold=5.0),
    ):
        with forecache.cached(model, config, num_inference_steps=6):
            toy_run(model)
            assert forecache.stats(model).forecast_steps > 0, config


def test_the_first_call_refuses_a_layout_it_contradicts_and_leaves_the_model_as_it_was():
    model = Toy()
    controlnet = [torch.full((1, 4, 8), 0.1 * (i + 1)) for i in range(3)]
    before = toy_run(model, controlnet=controlnet)
    forecache.apply(model, ConfidenceGateConfig())  # blocks target: its chain assumes no glue
    x = torch.randn(1, 4, 8)
    with pytest.raises(
        UnsupportedModelError, match=r"first call: `blocks.1` received .* `blocks.0` returned"
    ):
        with torch.no_grad():
            model(x, torch.tensor([1000.0]), controlnet=controlnet)
    assert not hasattr(model, "_forecache_session")
    after = toy_run(model, controlnet=controlnet)
    assert all(torch.equal(a, b) for a, b in zip(after, before, strict=True))
    with pytest.raises(ValueError, match="not applied"):
        forecache.remove(model)
    forecache.apply(model, TaylorSeerConfig(interval=2, warmup=1))  # needs no chain: the glue is fine
    toy_run(model, controlnet=controlnet)
    assert forecache.stats(model).forecast_steps > 0
    forecache.remove(model)


def test_a_call_that_breaks_inside_the_hooks_is_refused_and_a_bad_call_is_the_callers():
    model = Toy(odd=True)  # the attention returns (tensor, str): the modules target cannot record it
    before = toy_run(model)
    forecache.apply(model, TaylorSeerConfig())
    with pytest.raises(RuntimeError):  # a wrong call: the model raises by itself
        model(torch.randn(1, 4, 7), torch.tensor([1000.0]))
    assert hasattr(model, "_forecache_session")  # still applied, the check still armed
    with pytest.raises(UnsupportedModelError, match="raised inside forecache's hooks: TypeError"):
        toy_run(model, steps=1)
    assert not hasattr(model, "_forecache_session")
    assert all(torch.equal(a, b) for a, b in zip(toy_run(model), before, strict=True))


def test_the_check_removes_itself_after_a_good_first_call():
    from diffusers.hooks import HookRegistry

    model = Toy()
    forecache.apply(model, TaylorSeerConfig())
    registry = HookRegistry.check_if_exists_or_initialize(model)
    assert registry.get_hook(FIRST_CALL_HOOK) is not None
    toy_run(model, steps=1)
    assert registry.get_hook(FIRST_CALL_HOOK) is None
    forecache.remove(model)
    forecache.apply(model, TaylorSeerConfig())
    forecache.remove(model)  # removed before any call: the check goes too
    assert registry.get_hook(FIRST_CALL_HOOK) is None


def test_a_model_without_time_or_blocks_is_refused_at_apply_with_the_reason():
    class NoTime(Toy):
        def forward(self, hidden_states, scale=1.0):
            for block in self.blocks:
                hidden_states = block(hidden_states, scale)
            return hidden_states

    with pytest.raises(UnsupportedModelError, match=r"no time argument among .*'hidden_states', 'scale'"):
        forecache.apply(NoTime(), TaylorSeerConfig())
    with pytest.raises(UnsupportedModelError, match="Linear has no list of transformer blocks"):
        forecache.apply(torch.nn.Linear(2, 2), TaylorSeerConfig())
