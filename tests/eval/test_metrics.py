import math

import numpy as np
import pytest

from forecache.eval import metrics
from forecache.eval.pareto import pareto_front


def _images(n=3, size=16, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 0.8, size=(n, size, size, channels)).astype(np.float32)


def test_psnr_of_identical_images_is_inf():
    a = _images()
    pooled, per = metrics.psnr(a, a)
    assert math.isinf(pooled) and pooled > 0
    assert all(math.isinf(v) for v in per)


def test_psnr_of_a_known_perturbation_matches_the_formula():
    a = _images()
    b = a + 0.1  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    pooled, per = metrics.psnr(a, b)
    assert pooled == pytest.approx(20.0, abs=1e-4)
    assert per == pytest.approx([20.0] * 3, abs=1e-4)


def test_psnr_pools_the_mse_over_images():
    a = _images(n=2)
    b = a.copy()
    b[1] += 0.2  # MSE 0 and 0.04 -> pooled MSE 0.02
    pooled, per = metrics.psnr(a, b)
    assert pooled == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-4)
    assert math.isinf(per[0]) and per[1] == pytest.approx(10 * math.log10(1 / 0.04), abs=1e-4)


def test_ssim_is_one_for_identical_and_lower_for_noisy_images():
    a = _images()
    noisy = np.clip(a + np.random.default_rng(1).normal(0, 0.2, a.shape), 0, 1).astype(np.float32)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-6)
    assert metrics.ssim(a, noisy) < 0.9


@pytest.mark.parametrize("noise", [0.002, 0.05])
def test_ssim_in_float32_agrees_with_float64(noise):
    from torchmetrics.functional.image import structural_similarity_index_measure

    a = _images(n=16, size=32, channels=3)
    b = np.clip(a + np.random.default_rng(2).normal(0, noise, a.shape), 0, 1).astype(np.float32)
    reference, images = metrics.to_tensor(a).double(), metrics.to_tensor(b).double()
    exact = structural_similarity_index_measure(images, reference, data_range=1.0, kernel_size=11, sigma=1.5)
    assert metrics.ssim(a, b) == pytest.approx(float(exact), abs=1e-6)


def test_ssim_handles_images_smaller_than_the_window():
    a = _images(size=8, channels=3)
    assert metrics.ssim(a, a) == pytest.approx(1.0, abs=1e-6)


def test_missing_weights_are_unavailable_never_zero():
    scorer = metrics.QualityScorer(None, "none", conditions=None, judge=None)
    a = _images()
    assert scorer.fid(a).value is None and scorer.fid(a).note.startswith("unavailable")
    assert scorer.adherence(a).value is None
    assert scorer.notes["adherence"] == "unavailable: needs a shipped reference model (its judge)"
    assert scorer.clip_score(a).value is None
    if metrics._hub_checkpoint(metrics._ALEXNET_FILE) is None:
        assert scorer.lpips(a, a).value is None
        assert scorer.notes["lpips"].startswith("unavailable")


def test_judge_fid_is_labelled_and_only_on_reference_models():
    from forecache.reference.models import DigitJudge

    judge = DigitJudge()
    real = _images(n=64, seed=3)
    scorer = metrics.QualityScorer(real, "test set", [0] * 64, judge)
    assert (
        "judge FID: the reference model's judge's features (DigitFeatureExtractor, 64-d)"
        in scorer.notes["fid"]
        or "Inception-v3" in scorer.notes["fid"]
    )
    assert scorer.fid(real).value == pytest.approx(0.0, abs=1e-3)
    assert scorer.fid(_images(n=64, seed=4) * 0.2).value > 1e-3
    expected = judge.adherence(real, [0] * 64)
    assert set(np.unique(expected)) <= {0.0, 1.0}
    assert scorer.adherence(real).value == pytest.approx(float(expected.mean()))
    # fewer than 64 samples: no FID, and the reason
    few = scorer.fid(real[:63])
    assert few.value is None and few.note == "not computed: 63 samples < 64"
    if metrics._hub_checkpoint(metrics._INCEPTION_FILE) is None:
        # any other model: the digit classifier's features mean nothing, FID is unavailable
        other = metrics.QualityScorer(real, "baseline", None, None)
        assert other.notes["fid"].startswith("unavailable: no local Inception weights")
        assert other.fid(real).value is None


def test_paired_scores_of_videos_are_per_frame():
    reference = _images(n=6, size=8, channels=3).reshape(2, 3, 8, 8, 3)
    video = reference.copy()
    video[:, 2] += 0.1  # only the last frame differs: MSE 0.01 there
    scores = metrics.paired_scores(reference, video)
    assert scores["psnr_db_per_frame"][:2] == [math.inf, math.inf]
    assert scores["psnr_db_per_frame"][2] == pytest.approx(20.0, abs=1e-4)
    assert scores["psnr_db"] == pytest.approx(10 * math.log10(3 / 0.01), abs=1e-4)
    assert scores["ssim_per_frame"][0] == pytest.approx(1.0) and scores["ssim_per_frame"][2] < 1.0
    assert len(scores["psnr_db_per_sample"]) == 2


def test_pareto_front():
    points = [(1.0, 40.0), (2.0, 30.0), (1.5, 25.0), (3.0, 20.0), (2.0, 35.0), (None, 50.0)]
    assert pareto_front(points) == [0, 4, 3]
    # lower is better (FID): (1, 10) beats (1.5, 12); (2, 11) is on the front
    assert pareto_front([(1.0, 10.0), (1.5, 12.0), (2.0, 11.0)], higher_is_better=False) == [0, 2]
