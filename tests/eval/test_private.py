"""Every private torch, diffusers and cache-dit name the harness reads (`forecache.eval._private`) holds.

The harness's tests run at the newest supported versions (torch 2.13, diffusers 0.42.1, cache-dit
1.5.3 when installed).
"""

import pytest
import torch
from diffusers.hooks import HookRegistry, ModelHook

from forecache.accel._private import mark_stateful
from forecache.eval import _private

pytestmark = pytest.mark.eval


def test_graphs_compiled_counts_dynamo_graphs():
    before = _private.graphs_compiled()
    compiled = torch.compile(lambda x: x * 3 + 1, backend="eager")
    compiled(torch.ones(3))
    assert _private.graphs_compiled() == before + 1


def test_raise_recompile_limit_raises_and_never_lowers():
    from torch._dynamo import config

    name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    previous = getattr(config, name)
    try:
        _private.raise_recompile_limit(previous + 5)
        assert getattr(config, name) == previous + 5
        _private.raise_recompile_limit(1)
        assert getattr(config, name) == previous + 5
    finally:
        setattr(config, name, previous)


@mark_stateful
class _Counting(ModelHook):
    def __init__(self):
        super().__init__()
        self.resets = 0

    def reset_state(self, module):
        self.resets += 1
        return module


def test_reset_stateful_cache_resets_the_stateful_hooks_of_a_bare_transformer(flux_pipe):
    hook = _Counting()
    HookRegistry.check_if_exists_or_initialize(flux_pipe.transformer).register_hook(hook, "counting")
    _private.reset_stateful_cache(flux_pipe.transformer)
    assert hook.resets == 1
    _private.reset_stateful_cache(torch.nn.Linear(2, 2))  # nothing to reset: no error


def test_keep_in_fp32_modules_reads_the_class_attribute():
    from diffusers import WanTransformer3DModel

    assert {"time_embedder", "scale_shift_table"} <= _private.keep_in_fp32_modules(
        WanTransformer3DModel(num_layers=1, num_attention_heads=2, attention_head_dim=8, ffn_dim=16)
    )
    assert _private.keep_in_fp32_modules(torch.nn.Linear(2, 2)) == set()


def test_snapshot_forwards_undoes_patched_forwards_and_reordered_children():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    x = torch.randn(1, 2)
    expected = model(x)
    restore = _private.snapshot_forwards(model)
    model[0].forward = lambda inp: inp * 0
    model[0]._is_patched = True
    relu = model._modules.pop("1")
    model._modules = {"1": relu, **model._modules}
    restore()
    assert "forward" not in vars(model[0]) and "_is_patched" not in vars(model[0])
    assert list(model._modules) == ["0", "1"] and torch.equal(model(x), expected)


def test_snapshot_forwards_restores_what_cache_dit_leaves(flux_pipe):
    cache_dit = pytest.importorskip("cache_dit")
    transformer = flux_pipe.transformer
    order = [name for name, _ in transformer.named_modules()]
    restore = _private.snapshot_forwards(transformer)
    cache_dit.enable_cache(flux_pipe, cache_config=cache_dit.DBCacheConfig(num_inference_steps=4))
    cache_dit.disable_cache(flux_pipe)
    restore()
    assert [name for name, _ in transformer.named_modules()] == order
    assert not [m for m in transformer.modules() if "forward" in vars(m) or "_is_patched" in vars(m)]
