"""The tuner weighs video frames: pooled, the worst frame, or per-frame weights; on a tiny Wan pipeline."""

import math

import pytest
import torch

import forecache
from forecache.calibrate.frames import Errors, check_frames, frame_psnr
from forecache.calibrate.frames import output as _output
from forecache.calibrate.tuner import _calls
from tests.fixtures.saved_pipelines import TINY_WAN_CALL, tiny_wan


def _videos():
    reference = torch.full((2, 3, 4, 4, 3), 0.5, dtype=torch.float64)
    output = reference.clone()
    output[:, 0] += 0.1  # frame 0: MSE 0.01 (20 dB)
    output[:, 2] += 0.01  # frame 2: MSE 1e-4 (40 dB); frame 1 exact
    return [reference], [output]


def test_frame_scores_on_known_errors():
    reference, output = _videos()
    assert frame_psnr(reference, output, "worst") == pytest.approx(20.0)
    pooled = 10 * math.log10(1 / ((0.01 + 1e-4) / 3))
    assert frame_psnr(reference, output) == pytest.approx(pooled)
    assert frame_psnr(reference, output, [0.0, 1.0, 1.0]) == pytest.approx(10 * math.log10(2 / 1e-4))
    assert frame_psnr(reference, output, [1, 1, 1]) == pytest.approx(pooled)
    assert frame_psnr(reference, reference, "worst") == math.inf
    with pytest.raises(ValueError, match=r"one weight per frame \(3\), got 2"):
        frame_psnr(reference, output, [1.0, 1.0])
    images = [torch.zeros(2, 4, 4, 3)]
    with pytest.raises(ValueError, match=r"scores videos .* use 'pooled'"):
        frame_psnr(images, images, "worst")


def test_errors_measured_call_by_call_score_as_all_calls_at_once():
    generator = torch.Generator().manual_seed(0)
    calls = [torch.rand(n, 3, 4, 4, 3, generator=generator, dtype=torch.float64) for n in (2, 1, 3)]
    outputs = [c + 0.05 * torch.randn(c.shape, generator=generator, dtype=torch.float64) for c in calls]
    joined = Errors.joined([Errors.of([a], [b]) for a, b in zip(calls, outputs, strict=True)])
    for frames in ("pooled", "worst", [1.0, 0.0, 2.0]):
        assert joined.psnr(frames) == pytest.approx(frame_psnr(calls, outputs, frames), rel=1e-12)
    # a subset scores as those samples alone: the second call's one sample is sample 2
    assert joined.pick(torch.tensor([2])).psnr() == pytest.approx(frame_psnr(calls[1:2], outputs[1:2]))
    # videos of other lengths: pooled over every value, frames no longer weighed
    longer = torch.rand(1, 5, 4, 4, 3, generator=generator, dtype=torch.float64)
    mixed = Errors.joined([Errors.of(calls[:1], outputs[:1]), Errors.of([longer], [longer + 0.1])])
    assert mixed.psnr() == pytest.approx(frame_psnr([calls[0], longer], [outputs[0], longer + 0.1]))
    with pytest.raises(ValueError, match="scores videos"):
        mixed.psnr("worst")


@pytest.mark.parametrize(
    ("frames", "error", "message"),
    [
        ("best", ValueError, r"`frames` must be one of \['pooled', 'worst'\] or per-frame weights, got 'b"),
        ([1.0, -1.0], ValueError, "weights must be finite, >= 0 and not all 0"),
        ([0.0, 0.0], ValueError, "not all 0"),
        ([], ValueError, "not all 0"),
        (3, TypeError, "`frames` must be a name or a sequence of numbers, got 3"),
        ([1, "a"], TypeError, "sequence of numbers"),
    ],
)
def test_bad_frame_settings_name_the_field(frames, error, message):
    with pytest.raises(error, match=message):
        check_frames(frames)


@pytest.fixture(scope="module")
def wan(one_thread):
    pipe = tiny_wan(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _call(steps=12):
    return {
        "prompt": ["a red car", "a small bird"],
        "num_inference_steps": steps,
        "height": TINY_WAN_CALL["height"],
        "width": TINY_WAN_CALL["width"],
        "num_frames": TINY_WAN_CALL["frames"],
        "guidance_scale": TINY_WAN_CALL["guidance_scale"],
    }


def test_tune_scores_each_candidate_by_its_worst_frame(wan):
    result = forecache.tune(wan, _call(), ratio=2.0, frames="worst", trials=3, progress=False)
    assert "(frames scored: 'worst')" in result.goal
    calls = _calls(wan, _call())
    reference = [_output(c()) for c in calls]
    with forecache.cached(wan, result.config):
        outputs = [_output(c()) for c in calls]
    assert reference[0].shape[1] == TINY_WAN_CALL["frames"]
    worst = frame_psnr(reference, outputs, "worst")
    assert result.chosen.psnr_db == pytest.approx(worst, abs=0.01)  # the recording ran hooked
    assert worst < frame_psnr(reference, outputs)  # the worst frame is below the pooled figure
    verified = [c.psnr_db for c in result.candidates if c.psnr_db is not None]
    assert result.chosen.psnr_db == max(verified)


def test_tune_refuses_frame_weights_the_outputs_cannot_take(wan):
    with pytest.raises(ValueError, match=r"one weight per frame \(5\), got 2"):
        forecache.tune(wan, _call(steps=4), ratio=1.5, frames=[1.0, 2.0], trials=1, progress=False)
    with pytest.raises(ValueError, match="`frames` must be one of"):
        forecache.tune(wan, _call(steps=4), ratio=1.5, frames="mean", trials=1, progress=False)


@pytest.fixture(scope="module")
def wan22(one_thread):
    pipe = tiny_wan(seed=0, two_experts=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_two_experts_are_tuned_each_on_its_own_steps(wan22, tmp_path):
    steps = 16
    result = forecache.tune(wan22, _call(steps), ratio=2.0, trials=2, progress=False, validate=1)
    assert list(result.experts) == ["transformer", "transformer_2"]
    high, low = result.experts["transformer"], result.experts["transformer_2"]
    assert high.steps + low.steps == steps and 0 < high.steps < steps
    # each expert's timeline is laid on the step count its calls see: the whole loop for the first,
    # the steps left from where it joins for the second
    assert high.config.policy.steps == steps and low.config.policy.steps == low.steps
    assert high.chosen.ratio >= 2.0 and low.chosen.ratio >= 2.0 and result.ratio >= 2.0
    assert result.configs == {"transformer": high.config, "transformer_2": low.config}
    calls = _calls(wan22, _call(steps))
    new = _calls(wan22, _call(steps), 1)  # the validation's seed, after the calibration's 0
    reference = [_output(c()) for c in calls + new]
    result.apply(wan22)
    try:
        outputs = [_output(c()) for c in new]
        outputs.insert(0, _output(calls[0]()))
        stats = forecache.stats(wan22)
    finally:
        forecache.remove(wan22)
    # ~90 dB on random weights: the recorded reference (run hooked) differs in the last bits
    assert result.psnr_db == pytest.approx(frame_psnr(reference[:1], outputs[:1]), rel=0.01)
    # the validation runs both experts' configs at once, on the next seed
    assert result.validation.seeds == (1,)
    assert result.validation.psnr_db == pytest.approx(frame_psnr(reference[1:], outputs[1:]), abs=1e-9)
    assert "Validated on 2 new sample(s) of the calibration calls (seeds 1)" in result.report()
    decisions = {name: "".join(ctx.decisions) for name, ctx in stats.contexts.items()}
    for name, expert in (("cond", high), ("transformer_2/cond", low)):
        assert decisions[name] == "".join(
            "C" if i in expert.chosen.computed else "P" if i in expert.chosen.partial else "F"
            for i in range(expert.steps)
        )
    assert "## transformer_2" in result.report() and result.plot().height == 600
    path = result.save(tmp_path / "tuned.json")
    assert path.exists() and (tmp_path / "tuned.transformer_2.json").exists()
