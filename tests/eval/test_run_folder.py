"""Result folders never mix runs: new runs need an empty folder, rows carry their run's id, files are safe."""

import json
import os
import stat

import pytest

from forecache import _atomic, cli
from forecache.eval import store
from forecache.eval.schema import MethodResult
from forecache.eval.store import RunFolder, file_digests, row_stem


def _row(label, steps=2):
    return MethodResult(label, "taylorseer", "forecache", {"steps": steps}, status="ok")


def _run(path, settings=None, digests=()):
    folder = RunFolder(path)
    folder.start({"settings": settings or {"steps": 2}, "config_file_sha256": list(digests)})
    return folder


def test_a_new_run_refuses_a_folder_that_holds_anything(tmp_path):
    (tmp_path / "report.md").write_text("my own notes")
    with pytest.raises(ValueError) as raised:
        RunFolder(tmp_path)
    message = str(raised.value)
    assert "`out` must be a new or empty folder" in message and "1 entries (report.md)" in message
    assert f"--resume {tmp_path}" in message
    assert (tmp_path / "report.md").read_text() == "my own notes"
    RunFolder(tmp_path / "new" / "run")  # a new folder, and an empty one, are fine
    RunFolder(tmp_path / "new" / "run")


def test_the_cli_refuses_a_non_empty_out_before_anything_runs(tmp_path, capsys):
    _run(tmp_path / "other").save_row(0, _row("baseline"))
    argv = ["bench", "--model", "tiny:FluxTransformer2DModel", "--methods", "ab", "--match", "none"]
    assert cli.main([*argv, "--out", str(tmp_path / "other")]) == 2
    assert "must be a new or empty folder" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["rows", "run.json"]


def test_resume_reads_only_its_own_runs_rows(tmp_path):
    folder = _run(tmp_path / "run")
    folder.save_row(0, _row("baseline"))
    folder.save_row(1, _row("ab"))
    # another run's row in the same folder (a 4-step row inside a 2-step run): never read back
    foreign = {**_row("taylorseer", steps=4).to_dict(), "run_id": "0123456789ab"}
    (tmp_path / "run" / "rows" / "002-taylorseer.json").write_text(json.dumps(foreign))
    (tmp_path / "run" / "rows" / "003-garbage.json").write_text("{not json")
    again = RunFolder(tmp_path / "run", resume=True)
    again.check_resumable({"steps": 2})
    assert again.run_id == folder.run_id and len(folder.run_id) == 12
    assert sorted(again.finished()) == ["ab", "baseline"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["run_id"] == folder.run_id
    for path in (tmp_path / "run" / "rows").glob(f"*-{row_stem('ab')}.json"):
        assert json.loads(path.read_text())["run_id"] == folder.run_id


def test_stale_rows_are_removed_by_exact_name_only(tmp_path):
    folder = _run(tmp_path / "run")
    folder.save_row(1, _row("my-taylorseer"))
    folder.save_row(2, _row("taylorseer @3x"))
    folder.save_row(3, _row("taylorseer_3x"))  # the same slug as the label before, another label
    folder.save_row(4, _row("taylorseer"))
    folder.save_row(5, _row("taylorseer"))  # the same label again: its row at index 4 goes
    names = sorted(p.name for p in (tmp_path / "run" / "rows").iterdir())
    assert names == sorted(
        [
            f"001-{row_stem('my-taylorseer')}.json",
            f"002-{row_stem('taylorseer @3x')}.json",
            f"003-{row_stem('taylorseer_3x')}.json",
            f"005-{row_stem('taylorseer')}.json",
        ]
    )
    assert row_stem("taylorseer @3x") != row_stem("taylorseer_3x")
    long_a, long_b = "x" * 100 + "a", "x" * 100 + "b"
    assert store.slug(long_a) == store.slug(long_b) and row_stem(long_a) != row_stem(long_b)


def test_resume_on_a_missing_folder_creates_nothing(tmp_path):
    missing = tmp_path / "nowhere" / "run"
    with pytest.raises(
        ValueError, match=r"`resume` must be the folder of an earlier run, got .*no such folder"
    ):
        RunFolder(missing, resume=True)
    assert not (tmp_path / "nowhere").exists()
    from forecache.eval import bench

    with pytest.raises(ValueError, match="no such folder"):
        bench(model="tiny:FluxTransformer2DModel", methods=["ab"], match=(), resume=str(missing))
    assert not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("{not json", "is not a readable run.json"),
        ("[1, 2]", "must hold a JSON object with `settings`, got list"),
        ('{"settings": 3, "run_id": "abc"}', "got settings=3"),
        ('{"settings": {}}', "has no `run_id`"),
    ],
)
def test_a_malformed_run_json_is_a_clear_error(tmp_path, content, error):
    (tmp_path / "run.json").write_text(content)
    folder = RunFolder(tmp_path, resume=True)
    with pytest.raises(ValueError, match=error) as raised:
        folder.check_resumable({})
    assert "run.json" in str(raised.value)


def test_config_files_are_compared_by_content_not_path(tmp_path):
    config = tmp_path / "a.json"
    config.write_text('{"method": "ab", "params": {}}')
    folder = _run(tmp_path / "run", {"config_files": [str(config)]}, file_digests([config]))
    copy = tmp_path / "elsewhere.json"
    copy.write_text(config.read_text())
    again = RunFolder(tmp_path / "run", resume=True)
    again.check_resumable({"config_files": [str(copy)]}, file_digests([copy]))  # same content: fine
    config.write_text('{"method": "ab", "params": {"interval": 4}}')
    with pytest.raises(ValueError, match=r"the content of `config_files` differs"):
        again.check_resumable({"config_files": [str(config)]}, file_digests([config]))
    assert folder.run_id == again.run_id


def test_the_write_probe_and_temporary_files_never_follow_a_link(tmp_path, monkeypatch):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    folder = _run(tmp_path / "run")
    monkeypatch.setattr(_atomic.secrets, "token_hex", lambda n: "ab" * n)  # predictable names
    (tmp_path / "run" / f".write-check-{os.getpid()}-abababab").symlink_to(target)
    with pytest.raises(ValueError, match=r"`resume` must be a writable folder.*File exists"):
        RunFolder(tmp_path / "run", resume=True)
    (tmp_path / "run" / ".log.txt.abababababab.tmp").symlink_to(target)
    with pytest.raises(FileExistsError):
        folder.save_log(["hello"])
    assert target.read_text() == "keep me" and not (tmp_path / "run" / "log.txt").exists()


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_are_written_at_the_users_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = _atomic.atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_the_folder_is_synced_after_the_replace(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "replace", lambda *a: events.append("replace") or replace(*a))

    def recording(fd):
        events.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    _atomic.atomic_write_text(tmp_path / "a.txt", "x")
    assert events == ["file", "replace", "folder"]
