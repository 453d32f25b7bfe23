"""tools/bench_deps.py --quick: units are written, skipped when run again, and assembled with a verdict."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_deps  # noqa: E402


def test_quick_benchmark_is_resumable_per_unit_and_has_a_verdict(tmp_path, capsys):
    assert bench_deps.main(["--quick", "--out", str(tmp_path), "--max-units", "1"]) == 0
    partial = json.loads((tmp_path / "deps.json").read_text())
    assert partial["partial"] and partial["units_done"] == 1 and partial["missing"] == ["bignas_equal_cost_seed0"]
    unit = tmp_path / "units" / "quick" / "deps_seed0.json"
    written = unit.stat().st_mtime_ns
    assert bench_deps.main(["--quick", "--out", str(tmp_path)]) == 0
    assert "deps/seed0: done, skipped" in capsys.readouterr().out and unit.stat().st_mtime_ns == written
    result = json.loads((tmp_path / "deps.json").read_text())
    verdict = result["verdict"]
    assert not result["partial"] and verdict["seeds"] == 0  # quick has no bignas_ratio unit
    assert set(verdict) == {"seeds", "largest_accuracy", "pareto", "smallest_gap_vs_bignas", "onset_drop",
                            "macs_ratio_bignas_over_deps"}
    assert 0 <= verdict["pareto"]["deps"] <= 1 and 0 <= verdict["pareto"]["bignas_equal_cost"] <= 1
    assert verdict["onset_drop"] is not None and verdict["onset_drop"] >= 0
    deps, bignas = result["units"]["deps_seed0"], result["units"]["bignas_equal_cost_seed0"]
    assert deps["train_macs"] > 0 and bignas["train_macs"] > 0 and deps["train_cpu_s"] > 0
    assert len(deps["val_accuracy"]) == 2 and deps["warmup_epochs"] == 1
    assert (tmp_path / "deps_pareto.png").stat().st_size > 0


def test_equal_cost_epochs_match_the_expected_training_macs():
    epochs = bench_deps.method_epochs(bench_deps.SETTINGS["full"])
    assert epochs["bignas_ratio"] == round(10 * 400 / 270)
    assert epochs["bignas_equal_cost"] < epochs["deps"] < epochs["bignas_ratio"]


def test_paired_interval_and_onset_drop():
    assert bench_deps.onset_drop([0.5, 0.8, 0.7, 0.9], warmup=2) == pytest.approx(10.0)
    assert bench_deps.onset_drop([0.5, 0.8, 0.85, 0.9], warmup=2) == 0.0
    ci = bench_deps.interval([1.0, 3.0])
    assert ci["mean"] == 2.0 and ci["ci95"][0] < 0 < ci["ci95"][1]  # two seeds: t(1) = 12.7


def test_the_extra_method_trains_as_long_as_bignas_ratio_and_stays_out_of_the_verdict():
    setting = bench_deps.SETTINGS["full"]
    epochs = bench_deps.method_epochs(setting)
    raw = bench_deps.recipe_dict("deps_long", setting, 0, epochs)
    assert raw["train"]["epochs"] == epochs["bignas_ratio"] and "deps" in raw["plugins"]
    shorter = bench_deps.recipe_dict("deps_long_warmup25", setting, 0, epochs)
    assert shorter["train"]["epochs"] == epochs["bignas_ratio"]
    assert (raw["plugins"]["deps"]["warmup_fraction"], shorter["plugins"]["deps"]["warmup_fraction"]) == (0.5, 0.25)

    def unit(method, seed, pareto):
        return {"method": method, "seed": seed, "epochs": {"train": 1}, "mean_pareto_accuracy": pareto,
                "front_pareto_accuracy": pareto, "smallest": {"accuracy": pareto}, "largest": {"accuracy": pareto},
                "train_macs": 1.0, "train_cpu_s": 1.0, "train_wall_s": 1.0, "onset_drop": None}
    units = {(m, s): unit(m, s, p) for (m, s, p) in [("deps", 0, 0.90), ("bignas_ratio", 0, 0.92),
                                                      ("deps_long", 0, 0.925), ("deps", 1, 0.91),
                                                      ("bignas_ratio", 1, 0.92), ("deps_long", 1, 0.915)]}
    result = bench_deps.assemble(units, "full")
    assert result["verdict"]["pareto"]["deps"] == pytest.approx(0.905)   # deps_long is not deps
    assert result["units_total"] == 10 and "deps_long" in result["methods"]
    assert result["comparisons"]["deps_long_minus_bignas_ratio"]["pareto_points"]["mean"] == pytest.approx(0.0)


def test_a_gap_of_exactly_one_point_is_within_one_point():
    gap = 100 * (0.9014 - 0.9114)   # -1.0000000000000009 in floating point
    none = {"mean": None, "ci95": None}
    comparisons = {"deps_minus_bignas_ratio": {"pareto_points": none},
                   "deps_minus_bignas_equal_cost": {"pareto_points": none}}
    verdict = {"smallest_gap_vs_bignas": gap, "onset_drop": None, "largest_accuracy": None}
    assert bench_deps.targets(verdict, comparisons)["smallest_within_1_point"]
    verdict["smallest_gap_vs_bignas"] = 100 * (0.8997 - 0.9112)
    assert not bench_deps.targets(verdict, comparisons)["smallest_within_1_point"]
