"""The scenes training is seeded and resumable: an interrupted run resumed ends with the same weights."""

from __future__ import annotations

import pytest
import torch

from forecache.reference import training
from forecache.reference.inputs import flux_image_ids
from forecache.reference.scenes import train as scenes_train
from forecache.reference.scenes.model import MAX_TOKENS
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


def test_the_pooled_vector_stays_cut_through_binding_and_distillation(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(scenes_train, "_CHECK_SCENES", 8)
    pipe, _ = train_scenes(tmp_path, recipe=TINY, log=lambda _: None)
    projection = pipe.transformer.time_text_embed.text_embedder.linear_1
    assert torch.count_nonzero(projection.weight) == 0
    assert torch.count_nonzero(projection.bias) > 0  # the bias still trains: a constant the model keeps
    gen = torch.Generator().manual_seed(0)
    call = {
        "hidden_states": torch.randn(1, 64, 16, generator=gen),
        "encoder_hidden_states": torch.randn(1, MAX_TOKENS, 64, generator=gen),
        "timestep": torch.tensor([0.7]),
        "guidance": torch.tensor([3.5]),
        "txt_ids": torch.zeros(MAX_TOKENS, 3),
        "img_ids": flux_image_ids(8, 8),
        "return_dict": False,
    }
    with torch.no_grad():
        one = pipe.transformer(pooled_projections=torch.randn(1, 64, generator=gen), **call)[0]
        other = pipe.transformer(pooled_projections=torch.randn(1, 64, generator=gen), **call)[0]
    assert torch.equal(one, other)
