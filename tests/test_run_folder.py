"""Nothing lost: --force replaces only a keras-edge run, and only once the new run works;
a lock keeps a second process out; SIGTERM and SIGKILL leave a status a reader can trust."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from keras_edge.lock import RunLock
from keras_edge.run_folder import MARKER, read_status
from tests.test_cli import TINY_TOML, run_cli, write

BAD_DATA = TINY_TOML.replace('name = "synthetic"', 'name = "folder:/nonexistent"')


def finished_run(tmp_path, capsys, name="run"):
    recipe = write(tmp_path / "r.toml", TINY_TOML)
    out = tmp_path / name
    code, _, err = run_cli(["run", recipe, "--out", str(out)], capsys)
    assert code == 0, err
    return out


def snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def test_force_refuses_the_current_folder_and_its_parents(tmp_path, capsys, monkeypatch):
    recipe = write(tmp_path / "r.toml", TINY_TOML)
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    (work / MARKER).write_text("{}")  # even one that looks like a run
    monkeypatch.chdir(work)
    for out in (".", "..", str(work)):
        code, _, err = run_cli(["run", recipe, "--out", out, "--force"], capsys)
        assert code == 2 and "will not replace" in err and err.count("\n") == 1, err
    assert (work / "notes.txt").read_text() == "mine" and (tmp_path / "r.toml").exists()


def test_force_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    recipe = write(tmp_path / "r.toml", TINY_TOML)
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.txt").write_text("years of work")
    code, _, err = run_cli(["run", recipe, "--out", str(thesis), "--force"], capsys)
    assert code == 2 and "is not a keras-edge run folder" in err, err
    assert (thesis / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in thesis.iterdir()) == ["thesis.txt"]


def test_force_refuses_a_symlink(tmp_path, capsys):
    run = finished_run(tmp_path, capsys)
    link = tmp_path / "link"
    link.symlink_to(run)
    before = snapshot(run)
    code, _, err = run_cli(["run", str(tmp_path / "r.toml"), "--out", str(link), "--force"], capsys)
    assert code == 2 and "symbolic link" in err, err
    assert snapshot(run) == before


def test_a_failing_forced_run_puts_the_earlier_run_back(tmp_path, capsys):
    run = finished_run(tmp_path, capsys)
    before = snapshot(run)
    bad = write(tmp_path / "bad.toml", BAD_DATA)
    code, _, err = run_cli(["run", bad, "--out", str(run), "--force"], capsys)
    assert code == 2 and "train/" in err, err
    assert snapshot(run) == before
    assert json.loads((run / "status.json").read_text())["status"] == "finished"
    assert [p.name for p in tmp_path.iterdir() if "replaced" in p.name] == []


def test_force_replaces_a_run_once_the_new_one_works(tmp_path, capsys):
    run = finished_run(tmp_path, capsys)
    (run / "old-only.txt").write_text("from the first run")
    code, _, err = run_cli(["run", str(tmp_path / "r.toml"), "--out", str(run), "--force",
                            "--set", "train.seed=7"], capsys)
    assert code == 0, err
    assert not (run / "old-only.txt").exists() and "seed = 7" in (run / "recipe.toml").read_text()
    assert [p.name for p in tmp_path.iterdir() if "replaced" in p.name] == []


def test_a_locked_run_folder_refuses_a_second_process(tmp_path, capsys):
    run = finished_run(tmp_path, capsys)
    before = snapshot(run)
    lock = RunLock(run).acquire()
    try:
        for extra in (["--force"], ["--resume"]):
            code, _, err = run_cli(["run", str(tmp_path / "r.toml"), "--out", str(run), *extra], capsys)
            assert code == 2 and f"in use by keras-edge process {os.getpid()}" in err, err
        assert read_status(run)["status"] == "finished"
    finally:
        lock.release()
    assert [f for f in snapshot(run) if f[0] != ".lock"] == [f for f in before if f[0] != ".lock"]


def test_a_killed_run_reads_as_dead_and_a_live_one_as_running(tmp_path):
    (tmp_path / "status.json").write_text(json.dumps({"status": "running", "pid": 1}))
    (tmp_path / MARKER).write_text("{}")
    assert read_status(tmp_path)["status"] == "dead" and "--resume" in read_status(tmp_path)["reason"]
    lock = RunLock(tmp_path).acquire()
    try:
        assert read_status(tmp_path) == {"status": "running", "pid": os.getpid()}
    finally:
        lock.release()


def test_failed_before_the_first_checkpoint_says_to_use_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text("{}")
    (out / "status.json").write_text(json.dumps({"status": "failed"}))
    recipe = write(tmp_path / "r.toml", TINY_TOML)
    code, _, err = run_cli(["run", recipe, "--out", str(out)], capsys)
    assert code == 2 and "pass --force to replace it" in err and "--resume" not in err, err
    code, _, err = run_cli(["run", recipe, "--out", str(out), "--resume"], capsys)
    assert code == 2 and "start it again with --force" in err, err


def test_sigterm_marks_the_run_interrupted_and_resumable(tmp_path):
    recipe = write(tmp_path / "r.toml", TINY_TOML.replace("epochs = 1", "epochs = 500"))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "keras_edge", "run", recipe, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not list((out / "checkpoints").glob("s*")) and time.time() < deadline:
            time.sleep(0.5)
        assert read_status(out)["status"] == "running"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err, err
    assert read_status(out)["status"] == "interrupted"


def test_python_m_does_not_import_modules_from_the_working_folder(tmp_path):
    (tmp_path / "click.py").write_text("open('imported', 'w').close()\nraise SystemExit(9)\n")
    proc = subprocess.run([sys.executable, "-m", "keras_edge", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "imported").exists()


@pytest.mark.parametrize("cls", ["os.system", "evilmod.Feature"])
def test_tfds_folder_naming_a_foreign_class_is_refused(tmp_path, capsys, cls):
    prepared = tmp_path / "tfds" / "crafted" / "1.0.0"
    prepared.mkdir(parents=True)
    (prepared / "features.json").write_text(json.dumps({"pythonClassName": cls, "featuresDict": {}}))
    text = TINY_TOML.replace('name = "synthetic"', f'name = "tfds:crafted"\ndata_dir = "{tmp_path / "tfds"}"')
    recipe = write(tmp_path / "r.toml", text)
    code, _, err = run_cli(["run", recipe, "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "not part of tensorflow-datasets" in err and cls in err, err


def test_out_that_cannot_be_created_is_one_line(tmp_path, capsys):
    recipe = write(tmp_path / "r.toml", TINY_TOML)
    (tmp_path / "a-file").write_text("x")
    code, _, err = run_cli(["run", recipe, "--out", str(tmp_path / "a-file" / "run")], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot create the run folder" in err, err
    assert (tmp_path / "a-file").read_text() == "x"
