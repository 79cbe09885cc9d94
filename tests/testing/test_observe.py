"""The structure observer and the survey measure what the classes do (checked on hand-known cases)."""

import torch

from forecache.testing.catalog import build_tiny
from forecache.testing.observe import describe, observe
from forecache.testing.survey import list_execution, pipelines_using, survey_from_dict


def test_flux_lists_order_streams_and_residuals():
    obs = observe(build_tiny("FluxTransformer2DModel"))
    assert obs.lists == {
        "transformer_blocks": ("FluxTransformerBlock", 2),
        "single_transformer_blocks": ("FluxSingleTransformerBlock", 3),
    }
    assert obs.runs() == ["transformer_blocks[0-1]", "single_transformer_blocks[0-2]"]
    assert (obs.img_tokens, obs.txt_tokens) == (16, 5)
    double = obs.calls["transformer_blocks"]
    assert double.inputs["hidden_states"] == "T(2x16x16)[img]"
    assert double.inputs["encoder_hidden_states"] == "T(2x5x16)[txt]"
    assert double.output == "tuple(T(2x5x16)[txt], T(2x16x16)[img])"
    found = {s.path: (s.kind, s.evidence, s.residual) for s in double.submodules}
    assert found == {
        "attn": ("attention", "AttentionModuleMixin", ["linear", "linear"]),
        "ff": ("feed-forward", "FeedForward", ["-", "linear"]),
        "ff_context": ("feed-forward", "FeedForward", ["linear", "-"]),
    }
    assert obs.shared == {} and obs.multi_shape_sites == {}
    assert list_execution(obs) == {"transformer_blocks": (2, 2, 1), "single_transformer_blocks": (3, 3, 1)}


def test_shared_sites_skips_and_nonlinear_residuals_are_seen():
    cogview4 = observe(build_tiny("CogView4Transformer2DModel"))
    ff = cogview4.calls["transformer_blocks"].submodules[1]
    assert (ff.path, ff.calls) == ("ff", 2)  # one FeedForward run on the image and on the text stream
    assert cogview4.multi_shape_sites == {"transformer_blocks.0.ff": 2, "transformer_blocks.1.ff": 2}
    hunyuan_dit = observe(build_tiny("HunyuanDiT2DModel"))
    assert hunyuan_dit.calls["blocks"].variants == 2  # the last block takes a long skip
    z_image = observe(build_tiny("ZImageTransformer2DModel"))
    assert z_image.runs() == ["noise_refiner[0]", "context_refiner[0]", "layers[0-1]", "all_final_layer[0]"]
    assert z_image.calls["layers"].inputs["x"] == "T(2x64x16)[img+txt]"
    # Z-Image normalises attention and feed-forward outputs before adding them: not linear in them
    assert [s.residual for s in z_image.calls["layers"].submodules] == [["nonlinear"], ["nonlinear"]]


def test_describe():
    assert describe(torch.zeros(2, 3), "img") == "T(2x3)[img]"
    assert describe((torch.zeros(1), None)) == "tuple(T(1), None)"
    assert describe({"a": 1.5}) == "dict{a: 1.5}"


def test_pipelines_using_finds_the_time_expression():
    found = pipelines_using("QwenImageTransformer2DModel")
    assert found["pipelines/qwenimage/pipeline_qwenimage"] == ["timestep=timestep / 1000"]
    z_image = pipelines_using("ZImageTransformer2DModel")
    positional = ["positional: latent_model_input_list, timestep_model_input"]
    assert z_image["pipelines/z_image/pipeline_z_image"] == positional


def test_survey_round_trips_through_json():
    import dataclasses
    import json

    from forecache.testing.survey import survey_class

    record = survey_class("DiTTransformer2DModel", presets=False)
    again = survey_from_dict(json.loads(json.dumps(dataclasses.asdict(record))))
    assert again == record
    assert record.time_convention == "0+1*t (falls 1000->83.3333)"
    assert record.registered.startswith("registered: transformer_blocks(h=None,e=None; attn1,attn2,ff)")
