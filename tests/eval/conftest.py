import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def flux_pipe():
    """The FLUX reference pipeline architecture with random weights: the real call convention, fast."""
    from forecache.reference.flux_digits import build_flux_digits

    torch.manual_seed(0)
    pipe = build_flux_digits()
    pipe.set_progress_bar_config(disable=True)
    return pipe
