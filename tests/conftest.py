"""Suite-wide set-up: without a GPU, Triton kernels run in Triton's CPU interpreter.

Triton reads ``TRITON_INTERPRET`` when it is first imported and when kernels are decorated, and
diffusers imports Triton as soon as it is imported itself; so the variable must be set before any
test module is collected, which only this top-level conftest guarantees (pytest loads it first
for ``pytest``, ``pytest tests`` and any path below). It changes how Triton kernels execute and
only on machines without CUDA, where Triton could not run them at all otherwise.
"""

import os

import pytest
import torch
from hypothesis import settings

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Property tests draw the same inputs on every run ("fixed", the default: CI stays reproducible
# and green means green); ``HYPOTHESIS_PROFILE=explore`` draws new ones each run to hunt for bugs,
# and each one it finds becomes an ``@example`` in its test.
settings.register_profile("fixed", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core machine: one thread avoids spin-waiting (tens of times faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
