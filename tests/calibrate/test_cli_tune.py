"""`forecache tune` on the command line, and the tuner as a method of `forecache bench`."""

import inspect
import json

import pytest

import forecache
from forecache import cli
from forecache.configfile import load_config
from forecache.eval.methods import make_method

pytestmark = pytest.mark.eval


def test_forecache_tune_writes_a_config_bench_reads(tmp_path, capsys):
    out = tmp_path / "tuned"
    code = cli.main(
        ["tune", "--ratio", "3", "--steps", "12", "--calibration", "2", "--trials", "2", "--no-progress",
         "--validate", "1", "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert (
        "forecache tune:" in printed.out and "dB against full compute on 2 calibration samples" in printed.out
    )
    assert "forecache tune: validated on 2 new samples: " in printed.out
    validated = "Validated on 2 new sample(s) of the calibration calls (seeds 1)"
    assert validated in (out / "tune-report.md").read_text()
    config = load_config(out / "tuned.json")
    assert type(config.policy).__name__ == "Timeline" and config.policy.steps == 12
    assert (out / "tune-report.md").read_text().count("dB |") >= 2 and (
        out / "schedule.png"
    ).stat().st_size > 0
    bench_out = tmp_path / "bench"
    code = cli.main(
        ["bench", "--config", str(out / "tuned.json"), "--steps", "12", "--seeds", "0-1", "--no-progress",
         "--out", str(bench_out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((bench_out / "results.json").read_text())["methods"]
    (row,) = [r for r in rows if r["method"] == "cache"]
    assert row["status"] == "ok" and row["compute_ratio"] >= 3.0 * 0.9
    # 12 steps at 3x leave most of a step unused: partial steps are tried unless --no-partial; the
    # fitted slope dampings are run at their 3 scales unless --no-damp
    report = (out / "tune-report.md").read_text()
    assert "+ partial step" in report and report.count("+ damped x") == 3
    whole = tmp_path / "whole"
    code = cli.main(
        ["tune", "--ratio", "3", "--steps", "12", "--calibration", "2", "--trials", "2", "--no-partial",
         "--no-damp", "--no-progress", "--out", str(whole)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert load_config(whole / "tuned.json").policy.partial == ()
    report = (whole / "tune-report.md").read_text()
    assert "partial step" not in report and "damped" not in report


def test_tuned_method_in_bench_calibrates_apart_from_the_benchmark_seeds(tmp_path, capsys):
    code = cli.main(
        ["bench", "--methods", "tuned:ratio=3,calibration=2,trials=2,partial=false",
         "tuned:ratio=3,calibration=2,trials=2", "--match", "none", "--steps", "12",
         "--seeds", "0-1", "--no-progress", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "results.json").read_text())["methods"]
    whole, partial = [r for r in rows if r["method"] == "tuned"]
    for row in (whole, partial):
        assert row["status"] == "ok", row["error"]
        assert row["info"]["tuned"]["ratio"] >= 3.0 and row["compute_ratio"] >= 3.0 * 0.9
    # whole steps: the 2 trials; with partial steps (12 steps, 3x leaves a third of a step unused) the
    # next count's 2 trials, each of its 3 later steps partial, up to 2 more spans, the steps again;
    # then the fitted slope dampings at their 3 scales
    assert whole["info"]["tuned"]["candidates_verified"] == 2 + 3
    assert whole["info"]["tuned"]["partial_steps"] == [] and partial["info"]["tuned"]["partial_steps"]
    assert 2 + 2 + 3 + 3 <= partial["info"]["tuned"]["candidates_verified"] <= 2 + 2 + 3 + 2 + 2 + 3


def test_tune_needs_a_goal(capsys):
    with pytest.raises(SystemExit):
        cli.main(["tune", "--steps", "12"])
    assert "one of the arguments --ratio --budget-db is required" in capsys.readouterr().err


def test_tune_refines_on_several_images_per_prompt(tmp_path, capsys):
    out = tmp_path / "refined"
    code = cli.main(
        ["tune", "--model", "scenes", "--ratio", "3", "--steps", "12", "--calibration", "2",
         "--images-per-prompt", "2", "--trials", "2", "--no-partial", "--refine", "1", "--no-progress",
         "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "against full compute on 4 calibration samples" in printed.out
    report = (out / "tune-report.md").read_text()
    assert "+ refined" in report and "refined on 4 sample(s)" in report
    assert load_config(out / "tuned.json").policy.steps == 12


def test_images_per_prompt_needs_prompts(tmp_path, capsys):
    code = cli.main(
        ["tune", "--ratio", "3", "--steps", "12", "--images-per-prompt", "2", "--out", str(tmp_path)]
    )
    assert code != 0
    assert "`images_per_prompt` needs a text-to-image pipeline (prompts), got 2" in capsys.readouterr().err


def test_the_cli_and_the_tuned_method_take_the_tuners_defaults():
    """``tuned:ratio=R`` in a bench and ``forecache tune --ratio R`` do what ``forecache.tune(ratio=R)`` does.

    The bench method once verified 6 candidates per step count where the tuner verifies 8: on the
    scenes model at 10x and 50 steps it chose another schedule, 40.33 dB (worst 31.61) on 64
    held-out prompts against the tuner's 42.36 (36.76).
    """
    tuner = inspect.signature(forecache.tune).parameters
    shared = ("trials", "partial", "refine", "damp")
    params = make_method("tuned", {"ratio": 10.0}).params
    assert {name: params[name] for name in shared} == {name: tuner[name].default for name in shared}
    assert params["trials"] == 8
    args = cli.build_parser().parse_args(["tune", "--ratio", "10"])
    assert (args.trials, args.refine, args.no_partial, args.no_damp) == (8, 0, False, False)
    assert (tuner["trials"].default, tuner["refine"].default, tuner["partial"].default) == (8, 0, True)
    cli_options = {"trials": args.trials, "refine": args.refine, "frames": args.frame_score}
    cli_options |= {"validate": args.validate, "seed": args.seed, "partial": not args.no_partial}
    assert cli_options == {name: tuner[name].default for name in cli_options}
