"""Reports show the worst sample beside the mean; reference models are recognised with their judge."""

from __future__ import annotations

import pytest

from forecache.eval.report import detail_rows, matched_rows, worst_psnr
from forecache.eval.schema import BenchResult, MethodResult
from forecache.eval.workload import reference_of
from forecache.reference import REFERENCE_MODELS, load_reference

pytestmark = pytest.mark.eval


def _result() -> BenchResult:
    base = MethodResult("baseline", "baseline", "baseline", compute_ratio=1.0, psnr_db=float("inf"))
    row = MethodResult(
        "timeline @4x",
        "timeline",
        "forecache",
        target=4.0,
        setting={"ratio": 4.2},
        compute_ratio=3.9,
        psnr_db=41.25,
        psnr_db_per_sample=[44.0, 36.5, 42.0],
        adherence=0.95,
    )
    match = {
        "targets": [4.0],
        "tolerance": 0.1,
        "methods": [
            {
                "label": "timeline",
                "knob": "ratio",
                "cells": [{"target": 4.0, "status": "matched", "row": row.label}],
            }
        ],
    }
    return BenchResult("bench", {}, {"model": "m"}, {}, {}, [base, row], "", "0", True, match=match)


def test_worst_sample_beside_the_mean_in_both_tables():
    result = _result()
    assert worst_psnr(result.methods[1]) == 36.5 and worst_psnr(result.methods[0]) is None
    header, lines = detail_rows(result)
    assert header[4:6] == ["PSNR dB", "worst sample dB"]
    assert lines[1][4:6] == ["41.25", "36.50"]
    assert lines[1][header.index("adherence")] == "0.950"
    _, cells = matched_rows(result)
    assert cells == [["timeline", "ratio", "41.2 dB (36.5 worst) @3.90x"]]


def test_reference_models_are_recognised_by_name_folder_or_pipeline_class():
    assert reference_of(None) is REFERENCE_MODELS["flux-digits"]
    assert reference_of("dit-digits") is REFERENCE_MODELS["dit-digits"]
    assert reference_of("not-a-model") is None
    deep = load_reference("flux-digits-deep")
    assert reference_of(deep) is REFERENCE_MODELS["flux-digits-deep"]  # its folder, not only its class

    class Other:
        name_or_path = "/nowhere"

    assert reference_of(Other()) is None
