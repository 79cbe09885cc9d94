"""Kernel tests: without a GPU, run the Triton path in Triton's CPU interpreter.

``TRITON_INTERPRET`` is read when the kernels are decorated, i.e. when
``forecache.kernels.triton_ops`` is first imported, so it is set here at collection time. It only
changes how Triton kernels execute and only on machines without CUDA, where Triton could not run
them at all otherwise; the rest of the suite does not use Triton.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
