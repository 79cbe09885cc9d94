"""Matched-speed runs end to end through the command line: schema, targets, failures, Ctrl-C and --resume."""

import json

import pytest

from forecache import cli
from forecache.eval import runner
from forecache.eval.store import row_stem
from forecache.reference import reference_path

pytestmark = pytest.mark.skipif(
    not reference_path("flux-digits").is_dir(), reason="reference weights not trained yet"
)

RUN = ["--steps", "12", "--seeds", "0-3", "--batch-size", "4", "--no-progress"]
TARGETS = (1.5, 2.5)


def _strict(path):
    def refuse(name):
        raise ValueError(f"non-strict JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


def _check_cells(doc, tolerance=0.10):
    """Every cell is on target (its row within the tolerance) or says why it cannot be."""
    rows = {row["label"]: row for row in doc["methods"]}
    statuses = []
    for method in doc["match"]["methods"]:
        assert [cell["target"] for cell in method["cells"]] == list(doc["match"]["targets"])
        assert method["evaluated"], method
        for cell in method["cells"]:
            statuses.append(cell["status"])
            if cell["status"] == "matched":
                row = rows[cell["row"]]
                assert row["status"] == "ok" and row["target"] == cell["target"]
                assert abs(row["compute_ratio"] / cell["target"] - 1) <= tolerance, (
                    cell,
                    row["compute_ratio"],
                )
                knob = method["knob"].split(" in ")[0]
                assert row["setting"] == {knob: cell["value"]}
            else:
                assert cell["status"] == "cannot reach" and cell["reason"], cell
                assert cell["row"] is None
    return statuses


def test_match_on_the_reference_model(tmp_path, capsys):
    out = tmp_path / "run"
    methods = ["taylorseer", "cg", "diffusers.fbcache", "diffusers.taylorseer", "cachedit.dbcache"]
    argv = ["bench", *RUN, "--methods", *methods, "--match", ",".join(map(str, TARGETS)), "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    lines = printed.out.splitlines()
    assert lines[1].split()[:4] == ["method", "knob", "1.5x", "2.5x"]
    table = {line.split()[0]: line for line in lines[3 : 3 + len(methods)]}
    assert set(table) == set(methods)
    # diffusers' TaylorSeerCache skips attention only: it never reaches 1.5x of the linear FLOPs
    assert table["diffusers.taylorseer"].split()[2:] == ["cannot", "reach", "cannot", "reach"]
    assert "[Cache-DiT]" not in printed.out + printed.err  # cache-dit's logs went to log.txt
    assert "Cache-DiT" in (out / "log.txt").read_text()

    doc = _strict(out / "results.json")
    assert doc["schema_version"] == 3 and doc["complete"] is True
    assert doc["match"]["targets"] == list(TARGETS) and doc["match"]["tolerance"] == 0.1
    statuses = _check_cells(doc)
    assert statuses.count("matched") >= 6, statuses
    rows = {row["label"]: row for row in doc["methods"]}
    assert rows["baseline"]["compute_ratio"] == 1.0
    ts = rows["taylorseer @2.5x"]
    assert ts["execution_unit"] == "module" and ts["execution_ratio"] >= ts["compute_ratio"] - 1e-9
    assert rows["diffusers.fbcache @2.5x"]["execution_ratio"] is None
    # cache-dit keeps the two guidance calls apart on a pipeline that makes two calls per step
    assert rows["cachedit.dbcache @1.5x"]["info"]["enable_separate_cfg"] is True
    assert doc["settings"]["repeats"] is None and doc["workload"]["repeats"] == 0
    for name in ("grid.png", "heatmaps.png", "pareto.png", "timeline.png", "report.md", "run.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "search").glob("*.json"))) == len(methods)
    assert "## Matched speed" in (out / "report.md").read_text()


def test_a_failing_method_exits_non_zero_and_the_others_are_written(tmp_path, capsys):
    out = tmp_path / "run"
    # dit-digits' DiTTransformer2DModel has no diffusers CacheMixin: FirstBlockCache cannot attach
    argv = ["bench", *RUN, "--model", "dit-digits", "--methods", "diffusers.fbcache", "ab", "--match", "2"]
    assert cli.main([*argv, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    assert "1 method(s) failed" in captured.err and "Traceback" not in captured.err
    doc = _strict(out / "results.json")
    rows = {row["label"]: row for row in doc["methods"]}
    assert (
        rows["diffusers.fbcache"]["status"] == "error"
        and "enable_cache" in rows["diffusers.fbcache"]["error"]
    )
    assert rows["ab @2x"]["status"] == "ok" and abs(rows["ab @2x"]["compute_ratio"] / 2 - 1) <= 0.1
    assert [c["status"] for c in doc["match"]["methods"][0]["cells"]] == ["error"]
    assert len(list((out / "rows").glob("*.json"))) == 3


def test_ctrl_c_keeps_finished_rows_and_resume_completes_the_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["bench", *RUN, "--methods", "ab", "taylorseer", "--match", "2.5"]
    evaluated = []
    original = runner.Harness.evaluate

    def interrupted(self, spec):
        evaluated.append(spec.label)
        if spec.name == "taylorseer":
            raise KeyboardInterrupt
        return original(self, spec)

    monkeypatch.setattr(runner.Harness, "evaluate", interrupted)
    assert cli.main([*argv, "--out", str(out)]) == 130
    assert "--resume" in capsys.readouterr().err
    doc = _strict(out / "results.json")
    assert doc["complete"] is False
    assert [row["label"] for row in doc["methods"]] == ["baseline", "ab @2.5x"]
    assert sorted(p.name.split("-", 1)[1] for p in (out / "rows").glob("*.json")) == [
        f"{row_stem('ab @2.5x')}.json",
        f"{row_stem('baseline')}.json",
    ]
    assert "INCOMPLETE" in (out / "report.md").read_text() or "Incomplete" in (out / "report.md").read_text()

    evaluated.clear()
    monkeypatch.setattr(
        runner.Harness, "evaluate", lambda self, spec: evaluated.append(spec.label) or original(self, spec)
    )
    assert (
        cli.main(["bench", *RUN, "--methods", "ab", "taylorseer", "--match", "2.5", "--resume", str(out)])
        == 0
    )
    assert evaluated and all(label.startswith("taylorseer") for label in evaluated)  # ab was not run again
    doc = _strict(out / "results.json")
    assert doc["complete"] is True
    assert [row["label"] for row in doc["methods"]][:2] == ["baseline", "ab @2.5x"]
    assert {m["label"] for m in doc["match"]["methods"]} == {"ab", "taylorseer"}
    _check_cells(doc)

    # a resume with other settings is refused, naming the setting
    assert cli.main([*argv, "--steps", "10", "--resume", str(out)]) == 2
    assert "setting `steps` differs" in capsys.readouterr().err
