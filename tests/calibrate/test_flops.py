import re
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import forecache
from forecache.calibrate.flops import count_flops


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1, groups=1)
        self.grouped = torch.nn.Conv2d(8, 8, kernel_size=1, groups=4)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = self.grouped(self.conv(x))
        return self.fc(x.mean(dim=(2, 3)))


def test_counts_match_the_formula_per_call():
    net = Net()
    x = torch.randn(2, 3, 6, 4)
    with count_flops(net) as count:
        net(x)
        net(x[:1])
    conv = 2 * (2 * 8 * 6 * 4) * 3 * 9
    grouped = 2 * (2 * 8 * 6 * 4) * 2
    fc = 2 * (2 * 5) * 8
    assert count.per_call == [conv + grouped + fc, (conv + grouped + fc) // 2]


def test_equals_torch_flop_counter_on_linear_and_conv():
    net = Net()
    x = torch.randn(2, 3, 6, 4)
    with count_flops(net) as ours:
        net(x)
    with FlopCounterMode(display=False) as theirs:
        net(x)
    assert ours.per_call == [theirs.get_total_flops()]


def test_layers_outside_the_model_and_skipped_layers_are_not_counted():
    net = Net()
    outside = torch.nn.Linear(4, 4)
    x = torch.randn(2, 3, 6, 4)
    net.fc.forward = lambda inp: torch.zeros(inp.shape[0], 5)  # a cache returning a forecast
    with count_flops(net) as count:
        outside(torch.randn(3, 4))
        net(x)
    assert count.per_call == [2 * (2 * 8 * 6 * 4) * 3 * 9 + 2 * (2 * 8 * 6 * 4) * 2]


def test_flops_inside_the_blocks_are_counted_apart():
    net = Net()
    x = torch.randn(2, 3, 6, 4)
    with count_flops(net, [net.conv, net.grouped]) as count:
        net(x)
        net(x)
    conv = 2 * (2 * 8 * 6 * 4) * 3 * 9
    grouped = 2 * (2 * 8 * 6 * 4) * 2
    assert count.inside == [conv + grouped] * 2 and count.per_call == [conv + grouped + 2 * (2 * 5) * 8] * 2


def test_forecache_has_one_flops_counter():
    root = Path(forecache.__file__).parent
    users = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"FlopCounterMode|F\.linear\b", path.read_text("utf-8"))
    )
    assert users == ["calibrate/flops.py"]


@pytest.mark.eval
def test_a_config_tuned_for_a_ratio_is_measured_by_bench_at_that_ratio(tmp_path):
    from forecache.eval import bench

    result = bench(
        model="flux-digits",
        methods=["tuned:ratio=8,calibration=1,trials=1"],
        match=(),
        steps=50,
        seeds=(0,),
        batch_size=1,
        repeats=0,
        progress=False,
        out=str(tmp_path),
    )
    row = result.methods[1]
    assert row.ok, row.error
    assert row.compute_ratio == pytest.approx(8.0, rel=0.05)
    assert row.compute_ratio == pytest.approx(row.info["tuned"]["ratio"], rel=1e-3)
