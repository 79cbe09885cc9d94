"""Suite-wide set-up: without a GPU, Triton kernels run in Triton's CPU interpreter.

Triton reads ``TRITON_INTERPRET`` when it is first imported and when kernels are decorated, and
diffusers imports Triton as soon as it is imported itself; so the variable must be set before any
test module is collected, which only this top-level conftest guarantees (pytest loads it first
for ``pytest``, ``pytest tests`` and any path below). It changes how Triton kernels execute and
only on machines without CUDA, where Triton could not run them at all otherwise.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
