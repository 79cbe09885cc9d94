"""The shipped reference models load, sample real digits, and call their transformer as documented."""

from __future__ import annotations

import contextlib

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import EulerDiscreteScheduler, FluxPipeline
from torchmetrics.image.fid import FrechetInceptionDistance

import forecache
from forecache.reference import (
    DigitFeatureExtractor,
    DiTDigitsPipeline,
    FluxDigitsPipeline,
    load_classifier,
    load_digits_16,
    load_reference,
    reference_models,
    reference_path,
)
from forecache.reference.flux_digits import FLUX_DIGITS_SIZES, build_flux_digits
from forecache.reference.train import train_flux

DIGIT_MODELS = ["flux-digits", "dit-digits", "flux-digits-deep"]
ALL_MODELS = [*DIGIT_MODELS, "scenes"]
FLUX_MODELS = list(FLUX_DIGITS_SIZES)
# 40 samples (4 per class) at the default guidance scale, seed 0: >= 0.95 at 50 steps, >= 0.9 at 28
# (FLUX.1-dev's default step count, the benchmark's default).
LABELS = [c for c in range(10) for _ in range(4)]
MIN_ACCURACY = {50: 0.95, 28: 0.9}
# FID (shipped classifier's 64-d features) of the 40 samples at 50 steps against all 1797 digits.
# Measured: flux-digits 120.0, dit-digits 116.9, flux-digits-deep 146.3; 40 real held-out digits
# score 76-100 (small-sample bias), uniform noise about 1600. The bounds leave a 1.4-1.7x margin for
# other platforms' arithmetic.
FID_BOUND = {"flux-digits": 200.0, "dit-digits": 200.0, "flux-digits-deep": 200.0}
# transformer parameters of flux-digits-deep: 4 x 36 + 8 x 15 times 96^2 in its blocks, plus embedders
DEEP_PARAMS = 2_541_572
PIPELINE_CLASS = {
    "flux-digits": FluxDigitsPipeline,
    "dit-digits": DiTDigitsPipeline,
    "flux-digits-deep": FluxDigitsPipeline,
    "scenes": FluxPipeline,
}


@pytest.fixture(scope="module", params=DIGIT_MODELS)
def named_pipe(request):
    pipe = load_reference(request.param)
    pipe.set_progress_bar_config(disable=True)
    return request.param, pipe


@pytest.fixture(scope="module")
def pipe(named_pipe):
    return named_pipe[1]


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def real_fid():
    """A FID metric already updated with the whole data set as the real distribution."""
    fid = FrechetInceptionDistance(feature=DigitFeatureExtractor(load_classifier()), normalize=True)
    images, _ = load_digits_16()
    fid.update((images + 1) / 2, real=True)
    return fid


def _to_classifier_input(images: torch.Tensor) -> torch.Tensor:
    return images * 2 - 1


def test_reference_models_names_and_unknown_name():
    assert reference_models() == ALL_MODELS
    with pytest.raises(
        ValueError,
        match=r"unknown reference model 'nope'; known: flux-digits, dit-digits, flux-digits-deep, scenes",
    ):
        load_reference("nope")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_from_pretrained_of_package_directory(name):
    directory = reference_path(name)
    assert (directory / "model_index.json").is_file()
    pipe = PIPELINE_CLASS[name].from_pretrained(directory)
    assert type(pipe) is PIPELINE_CLASS[name]
    weights = sorted(p.name for p in directory.rglob("*.safetensors"))
    assert weights and all(w.endswith(".safetensors") for w in weights)


def test_classifier_held_out_accuracy(classifier):
    images, labels = load_digits_16("test")
    with torch.no_grad():
        accuracy = (classifier(images).argmax(1) == labels).float().mean().item()
    assert accuracy >= 0.98, f"classifier test accuracy {accuracy:.4f}"


def test_feature_extractor_accepts_uint8_and_float_rgb(classifier):
    extractor = DigitFeatureExtractor(classifier)
    images, _ = load_digits_16("test")
    rgb = ((images[:8] + 1) / 2).repeat(1, 3, 1, 1)
    from_float = extractor(rgb)
    from_uint8 = extractor((rgb * 255).round().to(torch.uint8))
    assert from_float.shape == (8, extractor.num_features)
    assert torch.allclose(from_float, from_uint8, atol=0.05 * from_float.abs().max().item())


def test_fid_features_separate_real_digits_from_noise(real_fid):
    images, labels = load_digits_16("test")
    first_four = torch.cat([torch.nonzero(labels == c).flatten()[:4] for c in range(10)])
    real = real_fid.clone()
    real.update((images[first_four] + 1) / 2, real=False)
    noise = real_fid.clone()
    noise.update(torch.rand(40, 1, 16, 16, generator=torch.Generator().manual_seed(0)), real=False)
    real_score, noise_score = real.compute().item(), noise.compute().item()
    print(f"FID of 40 real test digits {real_score:.1f}, of 40 uniform-noise images {noise_score:.1f}")
    assert real_score < 150 < 1000 < noise_score, (real_score, noise_score)


def test_deep_flux_reference_has_12_blocks_in_flux_dev_proportions():
    transformer = load_reference("flux-digits-deep").transformer
    assert (len(transformer.transformer_blocks), len(transformer.single_transformer_blocks)) == (4, 8)
    assert transformer.config["num_attention_heads"] * transformer.config["attention_head_dim"] == 96
    params = sum(p.numel() for p in transformer.parameters())
    assert params == DEEP_PARAMS, params
    stored = sum(p.stat().st_size for p in reference_path("flux-digits-deep").rglob("*.safetensors"))
    assert stored < 10.5e6, f"flux-digits-deep weights take {stored / 1e6:.2f} MB"


@pytest.mark.parametrize("name", FLUX_MODELS)
def test_shipped_flux_weights_fit_the_builders_architecture(name):
    shipped = load_reference(name)
    built = build_flux_digits(**FLUX_DIGITS_SIZES[name])
    for key, value in FLUX_DIGITS_SIZES[name].items():
        assert shipped.transformer.config[key] == value, (key, shipped.transformer.config[key])
    shapes = {k: v.shape for k, v in built.transformer.state_dict().items()}
    assert shapes == {k: v.shape for k, v in shipped.transformer.state_dict().items()}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_layers": -1}, r"`num_layers` must be an int >= 0, got -1"),
        ({"num_single_layers": 2.0}, r"`num_single_layers` must be an int >= 0, got 2.0"),
        ({"num_attention_heads": 0}, r"`num_attention_heads` must be an int >= 1, got 0"),
        ({"num_layers": 0, "num_single_layers": 0}, r"`num_layers` \+ `num_single_layers` must be >= 1"),
    ],
)
def test_build_flux_digits_rejects_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_flux_digits(**kwargs)


def test_train_flux_rejects_unknown_name_before_training():
    message = r"`name` must be one of flux-digits, flux-digits-deep, got 'flux-huge'"
    with pytest.raises(ValueError, match=message):
        train_flux(steps=1, name="flux-huge")


@pytest.mark.parametrize("steps", [50, 28])
def test_full_compute_samples_are_recognised_digits(named_pipe, classifier, real_fid, record_property, steps):
    name, pipe = named_pipe
    images = pipe(
        class_labels=LABELS,
        num_inference_steps=steps,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    assert images.shape == (40, 1, 16, 16)
    with torch.no_grad():
        predicted = classifier(_to_classifier_input(images)).argmax(1)
    accuracy = (predicted == torch.tensor(LABELS)).float().mean().item()
    record_property(f"{name}_class_accuracy_{steps}", accuracy)
    print(f"{name}, {steps} steps: class accuracy {accuracy:.3f}")
    assert accuracy >= MIN_ACCURACY[steps], f"{name}: class accuracy {accuracy:.3f} < {MIN_ACCURACY[steps]}"
    if steps == 50:
        fid = real_fid.clone()
        fid.update(images, real=False)
        score = fid.compute().item()
        record_property(f"{name}_fid", score)
        print(f"{name}: FID (classifier features) {score:.2f}")
        assert score < FID_BOUND[name], f"{name}: FID {score:.2f} >= {FID_BOUND[name]}"


def test_output_types_shapes_and_ranges(pipe):
    kwargs = {"class_labels": [3, 7], "num_inference_steps": 2, "generator": torch.Generator().manual_seed(1)}
    as_np = pipe(**kwargs, output_type="np").images
    assert isinstance(as_np, np.ndarray) and as_np.shape == (2, 16, 16, 1)
    assert as_np.min() >= 0.0 and as_np.max() <= 1.0
    as_pt = pipe(**{**kwargs, "generator": torch.Generator().manual_seed(1)}, output_type="pt").images
    assert isinstance(as_pt, torch.Tensor) and as_pt.shape == (2, 1, 16, 16)
    np.testing.assert_allclose(as_pt.permute(0, 2, 3, 1).numpy(), as_np, atol=1e-6)
    as_pil = pipe(**kwargs, output_type="pil").images
    assert len(as_pil) == 2 and isinstance(as_pil[0], PIL.Image.Image) and as_pil[0].size == (16, 16)
    as_tuple = pipe(**kwargs, output_type="np", return_dict=False)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (2, 16, 16, 1)


def test_same_seed_gives_identical_images(pipe):
    def run() -> np.ndarray:
        return pipe(
            class_labels=[0, 5, 9],
            num_inference_steps=4,
            generator=torch.Generator().manual_seed(7),
            output_type="np",
        ).images

    first, second = run(), run()
    assert np.array_equal(first, second)
    other = pipe(
        class_labels=[0, 5, 9],
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(8),
        output_type="np",
    ).images
    assert not np.array_equal(first, other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"class_labels": [10]}, r"`class_labels` must hold ints in \[0, 9\], got 10"),
        ({"class_labels": [-1]}, r"`class_labels` must hold ints in \[0, 9\], got -1"),
        ({"class_labels": []}, r"`class_labels`"),
        (
            {"class_labels": [1], "num_inference_steps": 0},
            r"`num_inference_steps` must be an int >= 1, got 0",
        ),
    ],
)
def test_invalid_inputs_raise(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(**kwargs)


@contextlib.contextmanager
def _record_calls(transformer):
    """Records (cache context name, batch size) of every transformer call."""
    calls, active = [], [None]
    original = getattr(transformer, "cache_context", None)

    @contextlib.contextmanager
    def recording_context(name, **kwargs):
        active[0] = name
        try:
            with original(name, **kwargs):
                yield
        finally:
            active[0] = None

    def pre_hook(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        calls.append((active[0], hidden.shape[0]))

    if original is not None:
        transformer.cache_context = recording_context
    handle = transformer.register_forward_pre_hook(pre_hook, with_kwargs=True)
    try:
        yield calls
    finally:
        handle.remove()
        if original is not None:
            del transformer.cache_context


@pytest.mark.parametrize("name", FLUX_MODELS)
def test_flux_true_cfg_calls_twice_per_step_in_named_contexts(name):
    pipe = load_reference(name)
    pipe.set_progress_bar_config(disable=True)
    with _record_calls(pipe.transformer) as calls:
        pipe(class_labels=[1, 2, 3], num_inference_steps=3, guidance_scale=2.0, output_type="np")
    assert calls == [("cond", 3), ("uncond", 3)] * 3
    with _record_calls(pipe.transformer) as calls:
        pipe(class_labels=[1, 2, 3], num_inference_steps=3, guidance_scale=1.0, output_type="np")
    assert calls == [("cond", 3)] * 3


@pytest.mark.parametrize("name", FLUX_MODELS)
def test_taylorseer_engages_in_both_cfg_contexts_and_removal_is_bitwise(name):
    pipe = load_reference(name)
    pipe.set_progress_bar_config(disable=True)

    def run() -> torch.Tensor:
        generator = torch.Generator().manual_seed(3)
        return pipe(class_labels=[2, 7], num_inference_steps=12, generator=generator, output_type="pt").images

    baseline = run()
    forecache.apply(pipe, forecache.TaylorSeerConfig(interval=3, order=1, warmup=2, cooldown=1))
    cached = run()
    stats = forecache.stats(pipe)
    forecache.remove(pipe)
    after = run()
    assert list(stats.contexts) == ["cond", "uncond"]
    # steps 0-1 warm-up, every 3rd from step 2 computed, step 11 cool-down
    for context in stats.contexts.values():
        assert "".join(context.decisions) == "CCCFFCFFCFFC", (context.name, context.decisions)
    assert stats.compute_ratio > 1.0, stats.summary()
    assert not torch.equal(cached, baseline)
    assert float(torch.nn.functional.mse_loss(cached, baseline)) < 1e-3
    assert torch.equal(after, baseline)


def test_dit_batches_cfg_into_one_call_per_step():
    pipe = load_reference("dit-digits")
    pipe.set_progress_bar_config(disable=True)
    with _record_calls(pipe.transformer) as calls:
        pipe(class_labels=[1, 2, 3], num_inference_steps=3, guidance_scale=2.0, output_type="np")
    assert calls == [(None, 6)] * 3
    with _record_calls(pipe.transformer) as calls:
        pipe(class_labels=[1, 2, 3], num_inference_steps=3, guidance_scale=1.0, output_type="np")
    assert calls == [(None, 3)] * 3


def test_dit_works_with_another_scheduler(classifier):
    pipe = load_reference("dit-digits")
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    labels = list(range(10))
    images = pipe(
        class_labels=labels,
        num_inference_steps=25,
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    with torch.no_grad():
        accuracy = (classifier(_to_classifier_input(images)).argmax(1) == torch.tensor(labels)).float().mean()
    assert accuracy >= 0.9, f"EulerDiscreteScheduler: class accuracy {accuracy:.2f}"


def test_reference_helpers_are_reachable_from_forecache_reference():
    import forecache.reference

    assert forecache.reference.reference_models() == ALL_MODELS
    assert forecache.reference.load_reference is not None
