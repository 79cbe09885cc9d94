import torch

from forecache.eval.flops import count_linear_flops
from forecache.eval.probes import count_compute


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
    with count_linear_flops(net) as count:
        net(x)
        net(x[:1])
    conv = 2 * (2 * 8 * 6 * 4) * 3 * 9
    grouped = 2 * (2 * 8 * 6 * 4) * 2
    fc = 2 * (2 * 5) * 8
    assert count.per_call == [conv + grouped + fc, (conv + grouped + fc) // 2]


def test_equals_torch_flop_counter_on_linear_and_conv():
    net = Net()
    x = torch.randn(2, 3, 6, 4)
    with count_linear_flops(net) as ours:
        net(x)
    with count_compute(net) as theirs:
        net(x)
    assert ours.per_call == theirs.per_call


def test_layers_outside_the_model_and_skipped_layers_are_not_counted():
    net = Net()
    outside = torch.nn.Linear(4, 4)
    x = torch.randn(2, 3, 6, 4)
    net.fc.forward = lambda inp: torch.zeros(inp.shape[0], 5)  # a cache returning a forecast
    with count_linear_flops(net) as count:
        outside(torch.randn(3, 4))
        net(x)
    assert count.per_call == [2 * (2 * 8 * 6 * 4) * 3 * 9 + 2 * (2 * 8 * 6 * 4) * 2]
