"""The GEARnn benchmark's quick version: units, resume, a partial report with its verdict."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import bench_gearnn  # noqa: E402


def _run(argv, folder):
    env = {**os.environ, "KERAS_EDGE_CACHE": str(folder / "cache")}
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "bench_gearnn.py"), *argv], capture_output=True,
                          text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench_gearnn")
    argv = ["--quick", "--methods", "baseline", "gearnn2", "--units", str(folder / "units"),
            "--out", str(folder / "gearnn.json"), "--work", str(folder / "runs")]
    _run(argv, folder)
    return folder, argv


def test_quick_run_writes_units_curves_and_a_partial_verdict(quick):
    folder, _ = quick
    report = json.loads((folder / "gearnn.json").read_text())
    assert report["units_done"] == 2 and report["units_total"] == 4
    assert sorted(report["units_missing"]) == ["gearnn1-seed0", "mshot-seed0"]
    verdict = report["verdict"]
    assert verdict["seeds"] == 1 and verdict["cost_unit"] == "cpu_s" and verdict["baseline_cost"] > 0
    assert 0 < verdict["augmentation_share_era"] < 1
    assert verdict["gearnn2_minus_gearnn1_robust_at_equal_cost"] is None  # gearnn1 has not run
    curve = report["curves"]["gearnn2-seed0"]
    assert [r["stage"] for r in curve] == ["grow", "grow", "robust"]
    assert all(b["cpu_s"] > a["cpu_s"] and b["train_macs"] > a["train_macs"] for a, b in zip(curve, curve[1:]))
    assert curve[-1]["params"] > curve[0]["params"]  # grown after the first epoch
    unit = json.loads((folder / "units" / "gearnn2-seed0.json").read_text())
    assert curve[-1]["train_macs"] == unit["loop_train_macs"]  # the loop's own count agrees
    assert len(report["final_tables"]["baseline-seed0"]) == 15
    assert (folder / "gearnn.png").stat().st_size > 5000


def test_finished_units_are_skipped_when_run_again(quick):
    folder, argv = quick
    before = {p.name: p.stat().st_mtime for p in (folder / "units").glob("*-seed*.json")}
    assert "2/4 units" in _run(argv, folder)
    assert {p.name: p.stat().st_mtime for p in (folder / "units").glob("*-seed*.json")} == before


def test_cost_to_match_is_the_first_epoch_within_one_point():
    curve = [{"cpu_s": 1, "clean": 0.80, "robust": 0.70}, {"cpu_s": 2, "clean": 0.895, "robust": 0.70},
             {"cpu_s": 3, "clean": 0.90, "robust": 0.795}]
    assert bench_gearnn.first_match(curve, 0.90, 0.80)["cpu_s"] == 3
    assert bench_gearnn.first_match(curve, 0.90, 0.90) is None
    assert bench_gearnn.at_cost(curve, 2.5)["cpu_s"] == 2
