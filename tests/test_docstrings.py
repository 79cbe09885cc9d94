"""The examples in the public API's docstrings run (doctest)."""

import doctest

import pytest

import forecache.accel.config
import forecache.api
import forecache.layouts.registry


@pytest.mark.parametrize("module", [forecache.api, forecache.layouts.registry, forecache.accel.config])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, (
        f"{result.failed} of {result.attempted} doctest examples failed in {module.__name__}"
    )
    if module is not forecache.accel.config:
        assert result.attempted >= 1
