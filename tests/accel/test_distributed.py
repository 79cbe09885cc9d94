"""The confidence gate under torch.distributed: two CPU ranks (gloo) holding shards of one sequence."""

import os
import tempfile
from datetime import timedelta

import torch
import torch.distributed as dist

import forecache
from forecache import CacheConfig, ConfidenceGate, Taylor
from forecache.accel.layout import BlockListLayout, ModelLayout
from forecache.layouts import registry
from tests.fixtures.ranks import run_two_ranks, write_result

TOKENS, STEPS = 8, 12


def probe_values(step, tokens):
    """Linear in the step everywhere, except a spike at step 6 in the second half of the sequence."""
    values = torch.full((tokens,), 1.0 + 0.1 * step)
    if step == 6:
        values[tokens // 2 :] = 5.0
    return values


class ProbeBlock(torch.nn.Module):
    def __init__(self, offset):
        super().__init__()
        self.offset = offset

    def forward(self, hidden_states, step):
        tokens = hidden_states.shape[1]
        values = probe_values(step, TOKENS)[self.offset : self.offset + tokens]
        return hidden_states * 0 + values[None, :, None]


class Rest(torch.nn.Module):
    def forward(self, hidden_states, step):
        return hidden_states + 1.0


class ShardedModel(torch.nn.Module):
    def __init__(self, offset=0):
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([ProbeBlock(offset), Rest(), Rest()])

    def forward(self, hidden_states, timestep, return_dict=False):
        step = int(1000 - timestep)
        for block in self.transformer_blocks:
            hidden_states = block(hidden_states, step)
        return (hidden_states,)


def decisions(model, tokens, reduce):
    layout = ModelLayout((BlockListLayout("transformer_blocks", None, None, ()),))
    forecache.register_layout("ShardedModel", layout)
    gate = ConfidenceGate(threshold=0.1, max_consecutive=3, warmup=2, reduce_across_ranks=reduce)
    try:
        with forecache.cached(model, CacheConfig(gate, Taylor(order=1), "blocks"), num_inference_steps=STEPS):
            for step in range(STEPS):
                model(torch.zeros(1, tokens, 2), torch.tensor(1000.0 - step))
            return "".join(forecache.stats(model).contexts["branch0"].decisions)
    finally:
        registry._REGISTRY.pop("ShardedModel")


def worker(rank, store_path, out_dir):
    # a rank left waiting in a collective fails after a minute instead of hanging the run
    dist.init_process_group(
        "gloo", init_method=f"file://{store_path}", rank=rank, world_size=2, timeout=timedelta(seconds=60)
    )
    half = TOKENS // 2
    try:
        result = {
            reduce: decisions(ShardedModel(offset=rank * half), half, reduce) for reduce in (False, True)
        }
        dist.barrier()  # neither rank tears down the group while the other still uses it
        write_result(out_dir, rank, {str(k): v for k, v in result.items()})  # before teardown (see ranks.py)
    finally:
        dist.destroy_process_group()


def test_gate_decision_is_the_same_on_every_rank():
    full = decisions(ShardedModel(), TOKENS, reduce=False)
    with tempfile.TemporaryDirectory() as out_dir:
        ranks = run_two_ranks(worker, (os.path.join(out_dir, "store"), out_dir), out_dir)
    # alone, each rank sees only its shard: the ranks disagree at the spike
    assert ranks[0]["False"] != ranks[1]["False"]
    # reduced, both take the decision of the whole sequence
    assert ranks[0]["True"] == ranks[1]["True"] == full
    assert full[6] == "C"
