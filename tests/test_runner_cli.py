"""Runner (resume, caching, errors) and the CLI, with throwaway methods defined here."""

import json

import pytest
import torch
from torch.nn import functional as F

from ltu_fast.cli import main
from ltu_fast.unlearn.api import UnlearnMethod, UnlearnResult, register_method
from ltu_fast.unlearn.runner import ExperimentConfig, run_comparison, unlearn

CALLS: list[str] = []


@register_method
class _Noop(UnlearnMethod):
    """Returns the original model unchanged."""

    name = "noop_test"

    def unlearn(self, model, task):
        CALLS.append(self.name)
        return UnlearnResult(model, {"conflict_rate": 0.25})


@register_method
class _AscentStub(UnlearnMethod):
    """A few steps of gradient ascent on the forget set (enough to move the metrics)."""

    name = "ascent_test"

    def __init__(self, lr: float = 0.01, steps: int = 3):
        self.lr, self.steps = lr, steps

    def unlearn(self, model, task):
        CALLS.append(self.name)
        x, y = task.forget.x, task.forget.y
        for _ in range(self.steps):
            model.zero_grad()
            (-F.cross_entropy(model(x), y)).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= self.lr * p.grad
        return UnlearnResult(model)


@register_method
class _Broken(UnlearnMethod):
    name = "broken_test"

    def unlearn(self, model, task):
        raise RuntimeError("boom")


def _config(tmp_path, methods, **kw):
    kw = {"out": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "progress": False, **kw}
    return ExperimentConfig.quick(methods=methods, **kw)


def test_runner_resumes_without_recomputing(tmp_path):
    CALLS.clear()
    first = run_comparison(_config(tmp_path, ("noop_test",)))
    assert CALLS == ["noop_test"]
    assert first["runs"]["original"]["0"]["cached"] is False
    noop = first["runs"]["noop_test"]["0"]
    # Noop keeps the original model: same metrics as the original row.
    assert noop["UA"] == first["runs"]["original"]["0"]["UA"] and noop["conflict_rate"] == 0.25
    CALLS.clear()
    second = run_comparison(_config(tmp_path, ("noop_test", "ascent_test"), method_kwargs={"ascent_test": {"steps": 2}}))
    assert CALLS == ["ascent_test"]  # the finished noop entry was reused
    assert second["runs"]["noop_test"] == first["runs"]["noop_test"]
    assert second["runs"]["ascent_test"]["0"]["method_config"] == {"lr": 0.01, "steps": 2}
    assert second["summary"]["retrain"]["gap"]["mean"] == 0.0
    CALLS.clear()  # new hyper-parameters for one method rerun that method only
    run_comparison(_config(tmp_path, ("noop_test", "ascent_test"), method_kwargs={"ascent_test": {"steps": 1}}))
    assert CALLS == ["ascent_test"]
    only_noop = run_comparison(_config(tmp_path, ("noop_test",)))  # earlier methods stay in the table
    assert only_noop["methods"] == ["original", "retrain", "noop_test", "ascent_test"]
    # A fresh run re-trains nothing: original and Retrain come from the disk cache.
    third = run_comparison(_config(tmp_path, ("noop_test",), out=str(tmp_path / "other")))
    assert third["runs"]["original"]["0"]["cached"] is True and third["runs"]["retrain"]["0"]["cached"] is True
    assert third["runs"]["retrain"]["0"]["RTE"] == first["runs"]["retrain"]["0"]["RTE"]


def test_runner_records_failures_and_retries(tmp_path):
    with pytest.warns(UserWarning, match="broken_test"):
        results = run_comparison(_config(tmp_path, ("broken_test",)))
    assert "boom" in results["runs"]["broken_test"]["0"]["error"]
    assert "failed" in (tmp_path / "out" / "results.md").read_text()


def test_runner_refuses_other_experiment_in_out(tmp_path):
    run_comparison(_config(tmp_path, ("noop_test",)))
    with pytest.raises(ValueError, match="--out"):
        run_comparison(_config(tmp_path, ("noop_test",), forget_ratio=0.2))
    with pytest.raises(ValueError, match="--methods"):
        run_comparison(_config(tmp_path, ("nope",)))


def test_unlearn_api_copies_model(tmp_path):
    from ltu_fast.unlearn.data import SplitConfig, build_splits
    from ltu_fast.unlearn.models import model_factory

    s = build_splits(SplitConfig(dataset="digits"), 0)
    factory = model_factory("mlp", s.input_shape, s.num_classes)
    model = factory()
    before = [p.clone() for p in model.parameters()]
    result = unlearn(model, s.task(factory), "ascent_test")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(before, result.model.parameters()))
    assert result.info["rte"] > 0
    with pytest.raises(ValueError, match="--methods"):
        unlearn(model, s.task(factory), "nope")


def test_cli_quick_writes_outputs(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["unlearn", "--quick", "--methods", "noop_test", "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress", "--seeds", "1"])
    assert code == 0
    assert {p.name for p in out.iterdir()} >= {"results.json", "results.md", "results.png", "class"}
    printed = capsys.readouterr().out
    # no forget setting given: both standard tables, random forgetting in --out, class-wise in --out/class
    random_part, class_part = printed.split("**Class-wise forgetting** (class 3)")
    assert "**Random forgetting**" in random_part and "| noop_test |" in random_part and "| retrain |" in random_part
    assert "| noop_test |" in class_part and "UA (test, forgotten classes)" in class_part
    assert printed.count("Smallest Avg. Gap: **noop_test**") == 2
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["dataset"] == "digits" and config["forget_mode"] == "random"
    assert json.loads((out / "class" / "results.json").read_text())["config"]["forget_classes"] == [3]
    assert (out / "class" / "results.png").exists()
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.pt"))
    assert cached == ["original", "retrain", "retrain"]  # one original serves both forget settings
    # a forget setting given: that comparison only
    assert main(["unlearn", "--quick", "--methods", "noop_test", "--out", str(tmp_path / "one"), "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress", "--seeds", "1", "--forget-mode", "random"]) == 0
    assert "Class-wise" not in capsys.readouterr().out and not (tmp_path / "one" / "class").exists()


def test_cli_errors_name_the_option(tmp_path, capsys):
    assert main(["--quick", "--forget-ratio", "2", "--out", str(tmp_path)]) == 2
    assert "--forget-ratio" in capsys.readouterr().err
    assert main(["--quick", "--recipe", "nonsense=1", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize(("argv", "module"), [(["--x"], "optimizer_step"), (["step", "--x"], "training_step"),
                                              (["adamw", "--x"], "adamw"), (["aggregators", "--x"], "aggregators")])
def test_cli_bench_dispatches_each_subcommand(monkeypatch, argv, module):
    import importlib

    bench = importlib.import_module(f"ltu_fast.bench.{module}")
    seen = []
    monkeypatch.setattr(bench, "main", lambda rest: seen.append(rest) or 7)
    assert main(["bench", *argv]) == 7 and seen == [["--x"]]


def test_cli_help_lists_every_method_as_a_choice(capsys):
    from ltu_fast.cli import build_parser, build_tune_parser
    from ltu_fast.unlearn.runner import available_methods

    for parser in (build_parser(), build_tune_parser()):
        text = parser.format_help()
        assert ",".join(available_methods()) + "}" in text.replace("\n", "").replace(" ", "")
    with pytest.raises(SystemExit):
        main(["unlearn", "--methods", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_cli_without_the_unlearn_extra_says_what_to_install(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "mlxtend", None)  # import mlxtend now raises ImportError
    assert main(["unlearn"]) == 2
    assert main(["tune"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'ltu_fast[unlearn]'" in err and "'mlxtend'" in err and "Traceback" not in err


def test_cli_tune_refuses_reported_seeds(tmp_path, capsys):
    assert main(["tune", "--dataset", "digits", "--seeds", "0", "--methods", "noop_test", "--defaults",
                 str(tmp_path / "d.json"), "--cache-dir", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_cli_tune_show_prints_the_stored_tables(tmp_path, capsys):
    from ltu_fast.unlearn.defaults import store_setting

    setting = {"dataset": "digits", "model": "cnn", "forget_mode": "random", "forget_ratio": 0.1,
               "forget_classes": [], "retain_access": 0.1}
    run = {"command": "ltu-fast tune x", "date": "d", "seconds": 1.0}
    trial = {"config": {"lr": 1.0}, "score": 0.5, "flags": [], "per_seed": []}
    val = {"UA": 0.0, "RA": 100.0, "VA": 97.0, "MIA": 0.0}
    store_setting({"setting": setting, "protocol": {"seeds": [100], "budget": 1},
                   "references": {"100": {"val": {"original": val, "retrain": {**val, "UA": 2.0}}}},
                   "methods": {"ga": {"chosen": {"lr": 1.0}, "score": 0.5, "trials": [trial], "run": run}}},
                  tmp_path / "d.json")
    assert main(["tune", "--show", "--defaults", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    assert "the untouched original scores 0.50" in out and "| ga | 1 | lr=1.0 | 0.50 |" in out


def test_cli_tune_default_seeds_depend_on_the_dataset(tmp_path, monkeypatch):
    """digits tunes on five seeds (its trials take seconds, its small splits are noisy), mnist5k on two;
    an explicit --seeds wins."""
    from ltu_fast.unlearn import tune as tune_mod

    seen = []
    monkeypatch.setattr(tune_mod, "tune", lambda config, *a, **k: seen.append(config.seeds) or {})
    monkeypatch.setattr(tune_mod, "tune_table", lambda entry: "")
    args = ["tune", "--methods", "noop_test", "--defaults", str(tmp_path / "d.json")]
    assert main([*args, "--dataset", "digits", "mnist5k"]) == 0
    assert main([*args, "--dataset", "digits", "--seeds", "200", "201"]) == 0
    assert seen == [(100, 101, 102, 103, 104), (100, 101), (200, 201)]


def test_summary_line_names_the_best_the_ties_and_who_beats_doing_nothing():
    from ltu_fast.unlearn.report import noise_line
    from ltu_fast.unlearn.runner import summarise

    gaps = {"original": [2.0, 2.1, 1.9], "retrain": [0.0, 0.0, 0.0], "a": [1.0, 1.1, 0.9],
            "b": [1.05, 1.25, 0.8], "c": [3.0, 3.2, 3.1]}
    runs = {m: {str(s): {"gap": g, "UA": 1.0} for s, g in enumerate(v)} for m, v in gaps.items()}
    summary = summarise(runs)
    assert summary["c"]["vs_original"]["lo"] > 0 > summary["a"]["vs_original"]["hi"]
    line = noise_line({"methods": list(gaps), "summary": summary})
    assert line.startswith("Smallest Avg. Gap: **a** (1.00). Within seed noise of it (paired 95% interval contains 0): b.")
    assert "Significantly behind it: c." in line
    assert line.endswith("(interval entirely below 0): a, b.")
    one_seed = {m: {"0": v["0"]} for m, v in runs.items()}
    assert "one seed" in noise_line({"methods": list(gaps), "summary": summarise(one_seed)})


def test_chart_bars_carry_the_seed_spread(tmp_path, monkeypatch):
    import matplotlib.axes
    import numpy as np

    from ltu_fast.unlearn.report import plot_gaps

    runs = {"retrain": {"0": {"UA": 3.0, "RA": 99.0, "TA": 97.0, "MIA": 5.0, "gap": 0.0},
                        "1": {"UA": 2.0, "RA": 99.0, "TA": 97.0, "MIA": 4.0, "gap": 0.0}},
            "ltu": {"0": {"UA": 1.0, "RA": 98.0, "TA": 96.0, "MIA": 5.0, "gap": 1.0},
                    "1": {"UA": 2.0, "RA": 99.0, "TA": 97.0, "MIA": 1.0, "gap": 0.75}}}
    bars = {}
    real = matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda self, x, h, w, **kw: (
        bars.setdefault(kw["label"], (h, kw["yerr"])), real(self, x, h, w, **kw))[1])
    plot_gaps({"runs": runs, "methods": ["retrain", "ltu"], "summary": {"ltu": {"gap": {}}},
               "config": {"dataset": "d", "model": "m", "forget_mode": "random"}}, tmp_path / "r.png")
    assert bars["|ΔUA|"] == ([1.0], [float(np.std([2.0, 0.0], ddof=1))])  # per seed |Δ| to that seed's Retrain
    assert bars["Avg. Gap"] == ([0.875], [float(np.std([1.0, 0.75], ddof=1))])
    assert (tmp_path / "r.png").exists()


def test_prefetch_trains_every_reference_once_and_bitwise_as_a_sequential_run(tmp_path):
    from dataclasses import replace

    from ltu_fast.unlearn.prefetch import prefetch_references
    from ltu_fast.unlearn.references import reference_pair

    random = ExperimentConfig.quick(seeds=(0, 1), model="mlp", cache_dir=str(tmp_path / "par"), progress=False)
    configs = [random, replace(random, forget_mode="class", forget_classes=(3,))]
    prefetch_references(configs, jobs=2)
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "par").glob("*.pt"))
    assert cached == ["original"] * 2 + ["retrain"] * 4  # one original per seed serves both settings
    assert not list((tmp_path / "par").glob("*.tmp"))  # every write finished (one writer per model)
    for config in configs:
        for seed in config.seeds:
            args = (config.split_config(), config.model, config.recipe, seed)
            parallel = reference_pair(*args, config.cache_dir, progress=False)[2]
            alone = reference_pair(*args, str(tmp_path / "seq"), progress=False)[2]
            for role in ("original", "retrain"):
                assert parallel[role].cached  # nothing left to train after the prefetch
                for a, b in zip(parallel[role].model.state_dict().values(), alone[role].model.state_dict().values()):
                    assert torch.equal(a, b)
