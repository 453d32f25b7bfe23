"""tf.distribute: mirrored on 2 logical CPU devices equals one device; two workers agree."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

from tests.conftest import finish, weights

RECIPE = """
[data]
name = "synthetic"
synthetic_examples = 400
synthetic_shape = [12, 12, 1]
synthetic_classes = 4
batch_size = 32
[model]
width = 0.25
options = {{dropout = 0.0}}
[train]
epochs = 2
optimizer = "sgd"
learning_rate = 0.05
jit_compile = false
distribute = "{distribute}"
"""


def run(tmp_path, name, distribute, env=None):
    recipe = tmp_path / f"{name}.toml"
    recipe.write_text(RECIPE.format(distribute=distribute))
    env = {**os.environ, "KERAS_EDGE_PLUGINS": "", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "keras_edge", "run", str(recipe), "--out", str(tmp_path / name)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
    two = {"KERAS_EDGE_CPU_DEVICES": "2"}
    one, mirrored = run(tmp_path, "one", "none"), run(tmp_path, "mirrored", "mirrored", two)
    finish(one)
    finish(mirrored)
    for a, b in zip(weights(tmp_path / "one"), weights(tmp_path / "mirrored"), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_on_loopback_agree_on_the_weights(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    procs = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(run(tmp_path, f"worker{index}", "multi_worker", {"TF_CONFIG": json.dumps(config)}))
    for proc in procs:
        finish(proc)
    for a, b in zip(weights(tmp_path / "worker0"), weights(tmp_path / "worker1"), strict=True):
        np.testing.assert_array_equal(a, b)
