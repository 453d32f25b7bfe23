"""The command line: exit codes, one-line errors, run folders."""

import json
import subprocess
import sys

import pytest

from keras_edge.cli import main


def run_cli(args, capsys):
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(path, text):
    path.write_text(text)
    return str(path)


TINY_TOML = """
[data]
name = "synthetic"
synthetic_examples = 128
synthetic_shape = [12, 12, 1]
batch_size = 32
[model]
width = 0.25
[train]
epochs = 1
"""


@pytest.mark.parametrize("text, message", [
    (None, "recipe file"),
    ("[train]\nepochs = = 1\n", "TOML syntax error"),
    ("[train]\nepoch = 1\n", "unknown key 'train.epoch'"),
    ("[train]\nepochs = 'x'\n", "wrong type"),
    ("[model]\nname = 'nope'\n", "unknown model 'nope'"),
    ("[data]\nname = 'nope'\n", "unknown dataset 'nope'"),
    ("[[stages]]\nname = 'a'\nplugins = ['nope']\n", "unknown plugin 'nope'"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, text, message):
    recipe = tmp_path / "r.toml"
    if text is not None:
        recipe.write_text(text)
    code, _, err = run_cli(["run", str(recipe), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not (tmp_path / "out" / "model.keras").exists()


def test_run_evaluate_and_refuse_non_empty_out(tmp_path, capsys):
    recipe = write(tmp_path / "r.toml", TINY_TOML)
    out = tmp_path / "out"
    code, _, _ = run_cli(["run", recipe, "--out", str(out), "--set", "data.batch_size=16"], capsys)
    assert code == 0
    for name in ("model.keras", "recipe.toml", "metrics.csv", "summary.json", "training_curves.png"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert {"test_accuracy", "wall_time_s", "params", "macs", "stage_times_s"} <= set(summary)
    assert json.loads((out / "status.json").read_text())["status"] == "finished"
    assert "batch_size = 16" in (out / "recipe.toml").read_text()
    assert list((out / "tensorboard").iterdir())
    code, _, err = run_cli(["run", recipe, "--out", str(out)], capsys)
    assert code == 2 and "is not empty; pass --resume" in err
    code, out_text, _ = run_cli(["evaluate", str(out)], capsys)
    assert code == 0
    assert 0 <= json.loads(out_text)["accuracy"] <= 1
    code, _, err = run_cli(["evaluate", str(tmp_path)], capsys)
    assert code == 2 and "model.keras not found" in err


def test_plugins_json(capsys):
    code, out, _ = run_cli(["plugins", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert all({"name", "hooks", "version", "options"} <= set(r) for r in rows)


def test_console_script_reports_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "keras_edge", "run", str(tmp_path / "none.toml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("error: recipe file")


def test_help_is_useful(capsys):
    code, out, _ = run_cli(["run", "--help"], capsys)
    assert code == 0 and "--resume" in out and "--set" in out
