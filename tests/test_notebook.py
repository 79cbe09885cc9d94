"""The schedule-tuning notebook: committed without outputs, runs headless, writes a config bench reads."""

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the dev extra (nbformat, nbclient, ipykernel)")
nbclient = pytest.importorskip("nbclient", reason="needs the dev extra (nbformat, nbclient, ipykernel)")
pytest.importorskip("ipykernel", reason="needs the dev extra (nbformat, nbclient, ipykernel)")

from forecache.cli import main  # noqa: E402

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "tune_schedule.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "the notebook has no code cells"
    dirty = [i for i, cell in enumerate(code) if cell.outputs or cell.execution_count is not None]
    assert not dirty, f"code cells {dirty} carry outputs or execution counts; clear them before committing"


@pytest.mark.slow
def test_notebook_runs_and_its_config_benches(tmp_path, monkeypatch):
    out_dir = tmp_path / "notebook"
    monkeypatch.setenv("FORECACHE_NOTEBOOK_OUT", str(out_dir))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError naming the failing cell
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"notebook errors: {[(o.ename, o.evalue) for o in errors]}"

    config = out_dir / "chosen.json"
    assert config.is_file(), (
        f"the notebook wrote no config; {out_dir} holds {sorted(p.name for p in out_dir.iterdir())}"
    )
    assert (out_dir / "sweep-taylorseer" / "pareto.png").is_file()
    chosen = json.loads(config.read_text())["methods"]
    assert len(chosen) == 1

    bench_out = tmp_path / "bench"
    code = main(
        [
            "bench",
            "--config",
            str(config),
            "--steps",
            "8",
            "--seeds",
            "0-1",
            "--repeats",
            "1",
            "--out",
            str(bench_out),
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((bench_out / "results.json").read_text())
    rows = {row["label"]: row for row in results["methods"]}
    label = chosen[0]["label"]
    assert label in rows, f"{label!r} missing from results.json rows {list(rows)}"
    assert rows[label]["status"] == "ok", rows[label]["error"]
    assert rows[label]["compute_ratio"] > 1.0, rows[label]["compute_ratio"]
