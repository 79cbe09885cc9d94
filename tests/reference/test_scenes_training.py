"""The scenes training is seeded and resumable: an interrupted run resumed ends with the same weights."""

from __future__ import annotations

import pytest
import torch

from forecache.reference import training
from forecache.reference.scenes import train as scenes_train
from forecache.reference.scenes.train import RECIPE, StagePlan, train_scenes

pytestmark = pytest.mark.eval

TINY = {
    name: StagePlan(steps=4, batch=2, lr=1e-3, warmup=1, ema=0.9 if name in ("t2i", "distill") else 0.0)
    for name in RECIPE
}


def _weights(pipe, judge):
    named = {"judge": judge, "vae": pipe.vae, "transformer": pipe.transformer, "clip": pipe.text_encoder}
    return {f"{k}.{n}": t.clone() for k, m in named.items() for n, t in m.state_dict().items()}


def test_interrupted_training_resumes_to_the_same_weights(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(scenes_train, "_CHECK_SCENES", 8)
    whole = _weights(*train_scenes(tmp_path / "whole", recipe=TINY, log=lambda _: None))

    monkeypatch.setattr(training, "_CHECKPOINT_EVERY", 2)  # the stages share run_stage
    real = training.step_randomness
    calls = {"t2i": 0}

    def interrupt_once(seed, stage, step):
        if stage == "t2i" and step == 3 and calls["t2i"] == 0:
            calls["t2i"] += 1
            raise KeyboardInterrupt
        return real(seed, stage, step)

    monkeypatch.setattr(training, "step_randomness", interrupt_once)
    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train_scenes(tmp_path / "cut", recipe=TINY, log=lines.append)
    resumed = _weights(*train_scenes(tmp_path / "cut", recipe=TINY, log=lines.append))
    assert "[t2i] resumed at step 2/4" in lines
    assert "[vae] resumed at step 4/4" in lines
    assert whole.keys() == resumed.keys()
    different = [k for k in whole if not torch.equal(whole[k], resumed[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


def test_recipe_must_name_every_stage(tmp_path):
    with pytest.raises(ValueError, match="missing detail, distill, judge"):
        train_scenes(tmp_path, recipe={"vae": TINY["vae"], "t2i": TINY["t2i"]})
