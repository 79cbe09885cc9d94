"""Every private diffusers/torch name forecache reads still means what it did, at this diffusers version.

CI runs this module at the floor and at the newest supported versions (see `.ci/run`).
"""

import threading

import pytest
import torch
from diffusers.hooks import HookRegistry, ModelHook

from forecache.accel import _private
from tests.fixtures.catalog import build_tiny


@_private.mark_stateful
class _Receiver(ModelHook):
    def __init__(self):
        super().__init__()
        self.manager = _private.context_receiver()
        self.resets = 0

    def reset_state(self, module):
        self.resets += 1
        return module


def test_cache_context_is_read_through_the_hook_state_manager():
    model = build_tiny("FluxTransformer2DModel").model
    hook = _Receiver()
    HookRegistry.check_if_exists_or_initialize(model).register_hook(hook, "receiver")
    assert _private.read_cache_context(hook.manager) == (None, None, None)
    with model.cache_context("cond"):
        assert _private.read_cache_context(hook.manager)[0] == "cond"
    assert _private.read_cache_context(hook.manager) == (None, None, None)


def test_a_hook_marked_stateful_is_reset_by_diffusers():
    model = build_tiny("FluxTransformer2DModel").model
    hook = _Receiver()
    registry = HookRegistry.check_if_exists_or_initialize(model)
    registry.register_hook(hook, "receiver")
    registry.reset_stateful_hooks()
    assert hook.resets == 1


class _Passthrough(ModelHook):
    def new_forward(self, module, *args, **kwargs):
        return self.fn_ref.original_forward(*args, **kwargs)


def test_the_forward_a_hook_wraps_can_be_replaced_and_stays_after_removal():
    block = torch.nn.Linear(2, 2)
    own = block.forward
    registry = HookRegistry.check_if_exists_or_initialize(block)
    hook = _Passthrough()
    registry.register_hook(hook, "pass")
    assert _private.hooked_forward(hook) == own
    _private.set_hooked_forward(hook, lambda x: x * 0 + 7)
    assert torch.equal(block(torch.ones(1, 2)), torch.full((1, 2), 7.0))
    registry.remove_hook("pass")  # removal installs the replacement: whoever replaced it restores
    assert torch.equal(block(torch.ones(1, 2)), torch.full((1, 2), 7.0))


def test_the_cache_context_is_kept_per_thread():
    model = build_tiny("FluxTransformer2DModel").model
    hook = _Receiver()
    HookRegistry.check_if_exists_or_initialize(model).register_hook(hook, "receiver")
    inside, seen = threading.Barrier(2), {}

    def branch(name):
        with model.cache_context(name):
            inside.wait()  # both threads are inside their own context now
            seen[name] = _private.read_cache_context(hook.manager)[0]
            inside.wait()

    threads = [threading.Thread(target=branch, args=(name,)) for name in ("cond", "uncond")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"cond": "cond", "uncond": "uncond"}
    assert _private.read_cache_context(hook.manager) == (None, None, None)


@pytest.mark.skipif(
    tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 6),
    reason="regional compile needs torch>=2.6",
)
def test_compiled_call_and_its_compile_context():
    block = torch.nn.Linear(3, 3)
    assert _private.compiled_call(block) is None
    block.compile(backend="eager", fullgraph=True)
    compiled = _private.compiled_call(block)
    assert compiled is not None
    context = _private.compile_context(compiled)
    assert context is not None and context.fullgraph is True
    _private.set_compiled_call(block, None)
    assert _private.compiled_call(block) is None


def test_block_metadata_and_identifiers():
    from diffusers.models.transformers.transformer_flux import FluxTransformerBlock

    assert "transformer_blocks" in _private.transformer_block_identifiers()
    assert _private.block_return_indices(FluxTransformerBlock) == (1, 0)
    assert _private.block_return_indices(torch.nn.Linear) is None


def test_invalidate_child_registries_is_safe_on_every_version():
    model = build_tiny("DiTTransformer2DModel").model
    _private.invalidate_child_registries(HookRegistry.check_if_exists_or_initialize(model))


def test_lazy_compiler_disable_excludes_a_function_from_tracing():
    calls = []

    @_private.lazy_compiler_disable
    def side_effect(x):
        calls.append(1)
        return x

    compiled = torch.compile(lambda x: side_effect(x) + 1, backend="eager")
    assert torch.equal(compiled(torch.ones(2)), torch.full((2,), 2.0))
    assert calls == [1]


def test_context_parallel_group_is_none_without_a_parallel_config():
    model = build_tiny("FluxTransformer2DModel").model
    assert _private.context_parallel_group(model) is None
    assert _private.context_parallel_group(None) is None  # the model was collected
