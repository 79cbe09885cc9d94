"""Shared by the tuner's tests: the shipped flux-digits reference pipeline, on one thread."""

import pytest

from forecache.reference import load_reference


@pytest.fixture(scope="module")
def flux(one_thread):
    pipe = load_reference("flux-digits")
    pipe.set_progress_bar_config(disable=True)
    return pipe
