"""The motion training is seeded and resumable: an interrupted run resumed ends with the same weights."""

from __future__ import annotations

import pytest
import torch

from forecache.reference import training
from forecache.reference.motion import train as motion_train
from forecache.reference.motion.train import RECIPE, train_motion
from forecache.reference.training import StagePlan

pytestmark = pytest.mark.eval

TINY = {
    name: StagePlan(steps=4, batch=2, lr=1e-3, warmup=1, ema=0.9 if name in ("t2v", "high", "low") else 0.0)
    for name in RECIPE
}


def _weights(pipe, experts, judge):
    named = {
        "judge": judge,
        "vae": pipe.vae,
        "transformer": pipe.transformer,
        "text": pipe.text_encoder,
        "high": experts.transformer,
        "low": experts.transformer_2,
    }
    weights = {f"{k}.{n}": t.clone() for k, m in named.items() for n, t in m.state_dict().items()}
    weights["vae.latents_mean"] = torch.tensor(pipe.vae.config.latents_mean)
    return weights


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(motion_train, "_CHECK_CLIPS", 4)
    monkeypatch.setattr(motion_train, "_POOL_CLIPS", 70)  # two chunks of the pool's drawing
    whole = _weights(*train_motion(tmp_path / "whole", recipe=TINY, log=lambda _: None))

    monkeypatch.setattr(training, "_CHECKPOINT_EVERY", 2)  # the stages share run_stage
    real = training.step_randomness
    cuts = {("t2v", 3), ("low", 3)}

    def interrupt_once(seed, stage, step):
        if (stage, step) in cuts:
            cuts.discard((stage, step))
            raise KeyboardInterrupt
        return real(seed, stage, step)

    monkeypatch.setattr(training, "step_randomness", interrupt_once)
    lines: list[str] = []
    for _ in range(2):
        with pytest.raises(KeyboardInterrupt):
            train_motion(tmp_path / "cut", recipe=TINY, log=lines.append)
    resumed = _weights(*train_motion(tmp_path / "cut", recipe=TINY, log=lines.append))
    assert lines.count("[pool] 70 training clips drawn and encoded") == 1  # read back on resume
    for expected in ("[t2v] resumed at step 2/4", "[low] resumed at step 2/4", "[vae] resumed at step 4/4"):
        assert expected in lines
    assert whole.keys() == resumed.keys()
    different = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"
    assert not torch.equal(whole["high.proj_out.weight"], whole["low.proj_out.weight"])  # two experts


def test_recipe_must_name_every_stage(tmp_path):
    with pytest.raises(ValueError, match="missing high, judge, low"):
        train_motion(tmp_path, recipe={"vae": TINY["vae"], "t2v": TINY["t2v"]})
