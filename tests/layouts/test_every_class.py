"""Every diffusers transformer class a pipeline denoises with, each with the three presets.

`check_preset` counts the cached units that really execute on an 8-call loop and requires, for an
engaging preset: fewer than without the cache, exactly what `forecache.stats` says, finite outputs,
bitwise equality with no cache under a compute-every-step variant, and bitwise equality after
`remove`. Anything else must be one of the outcomes listed in `EXPECTED`, with its reason.
"""

import diffusers
import pytest

from tests.fixtures.catalog import (
    CASES,
    EXCLUDED,
    catalog_names,
    diffusers_transformer_classes,
    installed_names,
)
from tests.fixtures.engage import PRESETS, check_preset

INSTALLED = diffusers_transformer_classes()


pytestmark = pytest.mark.usefixtures("one_thread")


UNAVAILABLE = installed_names()
TS, AB, CG = PRESETS

_NO_LIST = "has no list of transformer blocks with attention as a child"
_NO_CHAIN = "no chain of blocks whose streams pass from one block to the next untouched"
_DECLINES = "every probe error >= 0.1"

#: What a preset does on a class when it does not engage, and a piece of the reason it gives.
EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    # U-ViT: its blocks sit below `transformer` (in, mid, out) and no list is a direct child
    **{("UniDiffuserModel", preset): ("refuses", _NO_LIST) for preset in PRESETS},
    # the blocks target needs a chain of blocks connected without glue:
    (
        "BriaFiboTransformer2DModel",
        CG,
    ): ("refuses", "encoder_hidden_states = torch.cat"),  # a text layer injected per block
    ("HiDreamImageTransformer2DModel", CG): ("refuses", "initial_encoder_hidden_states"),  # likewise (Llama)
    ("ConsisIDTransformer3DModel", CG): ("refuses", "self.perceiver_cross_attention"),  # face features added
    ("WanAnimateTransformer3DModel", CG): ("refuses", "face_adapter"),  # face adapter every 5 blocks
    ("WanVACETransformer3DModel", CG): ("refuses", "control_hint"),  # VACE hints added between blocks
    ("LatteTransformer3DModel", CG): ("refuses", "reshape"),  # spatial / temporal blocks interleaved
    ("RFD4ProteinaTransformer", CG): ("refuses", "pair_update_layers"),  # pair updates interleaved
    # random weights whose probe output is rough in time: the gate measures it and computes
    ("BriaFibo2Transformer2DModel", CG): ("declines", _DECLINES),
    ("CosmosTransformer3DModel", CG): ("declines", _DECLINES),
    ("NucleusMoEImageTransformer2DModel", CG): ("declines", _DECLINES),
    ("ZImageTransformer2DModel", CG): ("declines", _DECLINES),
}


def test_every_installed_class_has_a_case_or_a_listed_reason():
    missing = sorted(set(INSTALLED) - set(CASES) - set(EXCLUDED))
    assert not missing, (
        f"diffusers {diffusers.__version__} transformer classes with neither a tiny case in "
        f"tests.fixtures.catalog nor a reason in EXCLUDED: {missing}"
    )
    assert {name for name, _ in EXPECTED} <= set(CASES)


@pytest.mark.skipif(
    len(INSTALLED) < 70, reason="the acceptance counts are for diffusers >= 0.42 (73 classes)"
)
def test_at_least_fifty_classes_engage_with_taylorseer_and_adams_bashforth():
    installed = [name for name in catalog_names() if not UNAVAILABLE[name]]
    for preset in (TS, AB):
        engaging = [name for name in installed if (name, preset) not in EXPECTED]
        assert len(engaging) >= 50, (preset, len(engaging))
    refusing_gate = [
        name for (name, preset), (status, _) in EXPECTED.items() if preset == CG and status == "refuses"
    ]
    assert len(installed) - len(refusing_gate) >= 60


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", catalog_names())
def test_preset_engages_or_gives_its_reason(name, preset):
    if UNAVAILABLE[name]:
        pytest.skip(UNAVAILABLE[name])
    outcome = check_preset(name, preset)
    status, reason = EXPECTED.get((name, preset), ("engages", ""))
    assert outcome.status == status, f"{name} {preset}: {outcome.status}: {outcome.detail} {outcome.checks}"
    assert reason in outcome.detail, outcome.detail
    if status != "refuses":
        assert all(outcome.checks.values()), outcome.checks
        assert outcome.executed == outcome.stats_executed and outcome.total == outcome.stats_total
    if status == "engages":
        assert outcome.executed < outcome.total, outcome
        assert outcome.flops_ratio is not None and outcome.flops_ratio > 1.0
