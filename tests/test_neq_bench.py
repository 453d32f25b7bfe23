"""The NEq benchmark's smoke version runs end to end, writes its verdict, and resumes."""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def load_bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_neq", ROOT / "tools" / "bench_neq.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_neq", module)   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_writes_a_verdict_and_skips_finished_units(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_EDGE_PLUGINS", "neq_velocity,neq_random,sparse_update,classifier_only")
    monkeypatch.setenv("KERAS_EDGE_CACHE", str(tmp_path / "cache"))
    bench = load_bench(monkeypatch)
    args = ["--quick", "--units", str(tmp_path / "units"), "--json", str(tmp_path / "neq.json"),
            "--png", str(tmp_path / "neq.png"), "--scratch", str(tmp_path / "scratch")]
    assert bench.main(args) == 0
    result = json.loads((tmp_path / "neq.json").read_text())
    assert result["units_done"] == result["units_total"] == 12 and not result["partial"]
    verdict = result["verdict"]["vgg/digits"]
    assert verdict["model"] == "vgg" and verdict["seeds"] == 2 and verdict["budgets"] == [0.15]
    assert verdict["budgets_with_interval"] == 1   # two paired seeds give an interval
    assert set(verdict) >= {"velocity_better", "velocity_not_worse", "gap_to_full_at_27"}
    assert "VERDICT vgg/digits" in capsys.readouterr().out
    memory = result["device_memory"]
    assert set(memory) == {"0.15", "1"} and memory["1"]["training_kib_vs_full"] == 1.0
    assert memory["0.15"]["trained_parameters"] < memory["1"]["trained_parameters"]
    assert memory["0.15"]["sparse_update"]["trained_parameters"] < memory["1"]["trained_parameters"]
    spent = result["tables"]["vgg/digits"]["spent_fraction"]["velocity_per_cost"]["0.15"]
    assert spent["n"] == 2 and 0 < spent["mean"] <= 0.15
    schemes = result["tables"]["vgg/digits"]["sparse_update_schemes"]
    assert schemes["0.15"]["fraction"] <= 0.15
    assert (tmp_path / "neq.png").stat().st_size > 0
    table = result["tables"]["vgg/digits"]
    share = table["room_recovered"]["velocity_per_cost"]["0.15"]
    full, rnd, vel = (table["full"]["mean"], table["paper"]["random"]["0.15"]["mean"],
                      table["paper"]["velocity_per_cost"]["0.15"]["mean"])
    assert share is None if full <= rnd else share == (vel - rnd) / (full - rnd)

    (tmp_path / "units" / "vgg" / "digits" / "s1" / "paper_random_0.15.json").unlink()   # one unit lost
    assert bench.main([*args, "--assemble"]) == 0
    assert "11 of 12 units (1 missing: partial)" in capsys.readouterr().out
    assert json.loads((tmp_path / "neq.json").read_text())["partial"]
    assert bench.main(args) == 0
    assert "1 units to run, 11 already done" in capsys.readouterr().out
    assert json.loads((tmp_path / "neq.json").read_text())["units_done"] == 12


def test_extra_experiments_share_the_grids_references(monkeypatch):
    bench = load_bench(monkeypatch)
    units = bench.unit_list(bench.EXPERIMENTS["low_budgets"])
    grid = {bench.unit_path(Path(), u) for u in bench.unit_list(bench.FULL)}
    own = [u for u in units if bench.unit_path(Path(), u) not in grid]
    assert {(u["method"], u["budget"]) for u in own} == {
        (m, b) for m in ("velocity_per_cost", "velocity", "random") for b in (0.03, 0.05)}
    assert len(own) == 2 * 5 * 6   # tasks x seeds x (methods x budgets)
    shared = [u for u in units if u not in own]
    assert {u["method"] for u in shared} == {"full", "classifier_only"}   # the grid's references, reused
    more = bench.unit_list(bench.EXPERIMENTS["more_seeds"])
    fresh = [u for u in more if bench.unit_path(Path(), u) not in grid]
    assert {u["seed"] for u in more} == set(range(10)) and {u["seed"] for u in fresh} == {5, 6, 7, 8, 9}
    longer = bench.EXPERIMENTS["mobilenet_longer"]
    assert longer.finetune_epochs == 2 * bench.FULL.finetune_epochs
    assert not grid & {bench.unit_path(Path(), u) for u in bench.unit_list(longer)}   # its own references
    for settings in bench.EXPERIMENTS.values():
        assert not any(bench.memory_unit(u, settings) for u in bench.unit_list(settings))


def test_seeds_needed_for_an_interval_above_zero(monkeypatch):
    bench = load_bench(monkeypatch)
    assert bench.seeds_needed(-0.1, 0.3) is None and bench.seeds_needed(0.2, None) is None
    n = bench.seeds_needed(0.32, 0.17)
    assert n == 4   # t(0.975, 3) * 0.17 / 2 = 0.27 < 0.32, t(0.975, 2) * 0.17 / 3 ** 0.5 = 0.42 is not
    assert bench.seeds_needed(0.32, 0.34) > n
    assert bench.ci95([0.32 + d for d in (-0.17, 0.17, -0.17, 0.17)])[1] > 0
