"""The tiny-model catalog covers every diffusers transformer class, and every case runs deterministically."""

import pytest
import torch

from forecache.testing.catalog import (
    EXCLUDED,
    EXTRA_DENOISERS,
    build_tiny,
    catalog_names,
    diffusers_transformer_classes,
    output_tensors,
    tiny_model_names,
)
from forecache.testing.catalog.base import CASES
from forecache.testing.inputs import flux_image_ids

STEPS = 2


def test_every_diffusers_transformer_class_has_a_case_or_a_reason():
    classes = diffusers_transformer_classes()
    missing = sorted(set(classes) - set(CASES) - set(EXCLUDED))
    assert not missing, (
        f"diffusers transformer classes with neither a tiny case in forecache.testing.catalog nor a reason "
        f"in EXCLUDED: {missing}"
    )
    assert not set(CASES) & set(EXCLUDED), "a class is both built and excluded"
    stale = sorted((set(CASES) | set(EXCLUDED)) - set(classes))
    assert not stale, f"catalog entries that are no transformer class of the installed diffusers: {stale}"
    assert all(len(reason) > 40 for reason in EXCLUDED.values())
    assert set(EXTRA_DENOISERS) <= set(CASES)
    assert len(classes) == len(CASES) + len(EXCLUDED) >= 70


def test_unknown_and_excluded_names_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"`class_name` must be one of .*got 'NoSuchModel'"):
        build_tiny("NoSuchModel")
    with pytest.raises(ValueError, match="sub-module of video UNets"):
        build_tiny("TransformerTemporalModel")


def test_original_names_keep_their_order_and_fields():
    assert tiny_model_names() == [
        "DiTTransformer2DModel",
        "PixArtTransformer2DModel",
        "SD3Transformer2DModel",
        "FluxTransformer2DModel",
        "WanTransformer3DModel",
        "HunyuanVideoTransformer3DModel",
        "CogVideoXTransformer3DModel",
        "QwenImageTransformer2DModel",
        "LTXVideoTransformer3DModel",
        "SanaTransformer2DModel",
    ]
    assert set(tiny_model_names()) <= set(catalog_names())
    flux = build_tiny("FluxTransformer2DModel")
    assert (flux.timestep_scale, flux.time_arg, flux.family) == (1e-3, "timestep", "flux")
    assert flux.time_kwargs(0, 4, 2)["timestep"].tolist() == [1.0, 1.0]
    assert flux.time_kwargs(3, 4, 2)["timestep"].tolist() == [0.25, 0.25]


def test_time_conventions():
    lumina = build_tiny("Lumina2Transformer2DModel")  # pipelines pass 1 - t / 1000: rises 0 -> 1
    assert [lumina.model_time(i, 4) for i in range(4)] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    hidream = build_tiny("HiDreamImageTransformer2DModel")
    assert list(hidream.time_kwargs(0, 2, 3)) == ["timesteps"]
    cosmos3 = build_tiny("Cosmos3OmniTransformer")
    assert cosmos3.max_batch == 1 and cosmos3.time_kwargs(1, 2, 1)["vision_timesteps"].tolist() == [500.0] * 4
    with pytest.raises(ValueError, match=r"`step` must be in \[0, 2\), got 2"):
        cosmos3.model_time(2, 2)


def test_flux_image_ids_are_shared_bitwise():
    from forecache.reference.flux_digits import image_ids
    from forecache.testing.arch import load_arch

    ids = flux_image_ids(3, 5)
    assert ids.shape == (15, 3) and ids[7].tolist() == [0.0, 1.0, 2.0]
    assert torch.equal(image_ids(3, 5, torch.device("cpu"), torch.float32), ids)
    arch = load_arch("flux-dev")
    made = arch.make_inputs(
        arch.model_config("tiny"), "tiny", 48, 80, 1, device="cpu", dtype=torch.float32, generator=None
    )
    assert torch.equal(made.kwargs["img_ids"], ids)
    inputs = build_tiny("FluxTransformer2DModel").make_inputs(1, torch.Generator().manual_seed(0))
    assert torch.equal(inputs["img_ids"], flux_image_ids(4, 4))


def _loop(name: str) -> list[torch.Tensor]:
    tiny = build_tiny(name)
    batch = min(2, tiny.max_batch or 2)
    inputs = tiny.make_inputs(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():
        return [t for step in range(STEPS) for t in output_tensors(tiny.call(inputs, step, STEPS, batch))]


@pytest.mark.parametrize("name", catalog_names())
def test_case_runs_a_falling_loop_finitely_and_deterministically(name):
    first, second = _loop(name), _loop(name)
    assert first, f"{name} returned no tensor"
    assert all(torch.isfinite(t).all() for t in first), f"{name}: non-finite output"
    assert len(first) == len(second)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True)), f"{name}: not deterministic"
    half = len(first) // STEPS
    assert any(not torch.equal(a, b) for a, b in zip(first[:half], first[half:], strict=True)), (
        f"{name}: the two steps gave the same output, the time argument is ignored"
    )
