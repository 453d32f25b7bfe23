"""Lose nothing: a killed run resumes to the same weights; a full disk keeps the last checkpoint."""

import errno
import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_edge import checkpoint, hookimpl
from keras_edge.errors import KerasEdgeError, PluginError
from keras_edge.recipe import parse_recipe
from keras_edge.runner import run_recipe
from tests.conftest import finish, tiny, weights

RECIPE = """
[data]
name = "synthetic"
synthetic_examples = 1600
synthetic_shape = [12, 12, 1]
synthetic_classes = 4
batch_size = 16
[model]
width = 0.25
[train]
epochs = 10
optimizer = "sgd"
learning_rate = 0.05
deterministic = true
"""


def cli(*args):
    env = {**os.environ, "KERAS_EDGE_PLUGINS": ""}
    return subprocess.Popen([sys.executable, "-m", "keras_edge", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_at_a_random_step_then_resume_gives_the_same_weights(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(RECIPE)
    reference = cli("run", str(recipe), "--out", str(tmp_path / "ref"))
    killed = cli("run", str(recipe), "--out", str(tmp_path / "run"))
    first = tmp_path / "run" / "checkpoints" / "s00-e0000"
    deadline = time.time() + 300
    while not first.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.exists(), killed.stderr.read() if killed.poll() is not None else "no checkpoint in time"
    delay = random.Random(os.getpid()).uniform(0.0, 1.5)  # 9 epochs remain: 3-5 s on a quiet machine
    time.sleep(delay)
    killed.kill()
    killed.wait()
    finish(reference)
    assert not (tmp_path / "run" / "model.keras").exists(), f"the run ended before the kill ({delay:.2f}s)"
    resumed = cli("run", str(recipe), "--out", str(tmp_path / "run"), "--resume")
    finish(resumed)
    for a, b in zip(weights(tmp_path / "ref"), weights(tmp_path / "run"), strict=True):
        np.testing.assert_array_equal(a, b)


def test_full_disk_keeps_the_previous_checkpoint_and_resume_works(tmp_path, monkeypatch):
    real_savez, calls = np.savez, []

    def savez(path, *arrays):
        calls.append(path)
        if len(calls) == 4:  # variables.npz of the second checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_savez(path, *arrays)

    monkeypatch.setattr(checkpoint.np, "savez", savez)
    out = tmp_path / "run"
    with pytest.raises(KerasEdgeError, match=r"cannot write .*s00-e0001: No space left on device; free disk space"):
        run_recipe(parse_recipe(tiny(train={"epochs": 3})), out)
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["s00-e0000"]
    assert json.loads((out / "status.json").read_text())["status"] == "failed"
    monkeypatch.setattr(checkpoint.np, "savez", real_savez)
    summary = run_recipe(parse_recipe(tiny(train={"epochs": 3})), out, resume=True)
    assert summary["epochs"] == 3 and (out / "model.keras").exists()


def test_corrupted_checkpoint_is_reported(tmp_path):
    out = tmp_path / "run"
    run_recipe(parse_recipe(tiny(train={"epochs": 1})), out)
    (out / "checkpoints" / "s00-e0000" / "model.keras").write_bytes(b"garbage")
    with pytest.raises(KerasEdgeError, match="checkpoint .*s00-e0000 is unreadable .*delete it"):
        run_recipe(parse_recipe(tiny(train={"epochs": 1})), out, resume=True)


class UnsavableState:
    autouse = True

    @hookimpl
    def state_dict(self, ctx):
        return {"epoch": ctx.epoch, "handle": object()} if ctx.epoch == 1 else {"epoch": ctx.epoch}


def test_a_plugin_state_that_a_checkpoint_cannot_hold_names_the_plugin_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(PluginError, match="plugin 'odd' failed in hook 'state_dict': returned what a checkpoint "
                                          "cannot hold"):
        run_recipe(parse_recipe(tiny(train={"epochs": 3}), catalog={"odd": None}), out,
                   extra_plugins={"odd": UnsavableState()})
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["s00-e0000"]
    assert checkpoint.load_checkpoint(out / "checkpoints" / "s00-e0000")["plugins"]["odd"] == {"epoch": 0}
