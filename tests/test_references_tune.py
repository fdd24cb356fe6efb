"""Reference checks and retries, the training loop's guards, paired statistics, tuned defaults, tune."""

import json
import math
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from ltu_fast.unlearn import references, train
from ltu_fast.unlearn.api import ArraySplit, UnlearnMethod, UnlearnResult, register_method
from ltu_fast.unlearn.data import SplitConfig, build_splits
from ltu_fast.unlearn.defaults import load_trials, lookup, store_setting
from ltu_fast.unlearn.filelock import locked
from ltu_fast.unlearn.references import ReferenceTrainingError
from ltu_fast.unlearn.runner import ExperimentConfig, run_comparison
from ltu_fast.unlearn.stats import paired_interval, versus_best_other
from ltu_fast.unlearn.train import TrainRecipe, cache_key, train_model


@register_method
class _Collapse(UnlearnMethod):
    """Zeroes every weight: a constant predictor, at chance."""

    name = "collapse_test"
    search_space: ClassVar[dict[str, tuple]] = {"scale": (0.0, 0.1)}

    def __init__(self, scale: float = 0.0):
        self.scale = scale

    def unlearn(self, model, task):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(self.scale)
        return UnlearnResult(model)


@register_method
class _Nudge(UnlearnMethod):
    """Adds ``eps`` noise to every weight (seeded): ``eps`` 0 is a no-op."""

    name = "nudge_test"
    search_space: ClassVar[dict[str, tuple]] = {"eps": (0.0, 0.02, 0.05)}

    def __init__(self, eps: float = 0.02):
        self.eps = eps

    def unlearn(self, model, task):
        g = torch.Generator().manual_seed(task.seed)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(self.eps * torch.randn(p.shape, generator=g))
        return UnlearnResult(model)


def _quick(tmp_path, methods, **kw):
    kw = {"out": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "progress": False,
          "defaults_file": str(tmp_path / "defaults.json"), **kw}
    return ExperimentConfig.quick(methods=methods, **kw)


# ------------------------------------------------------------------------------------------ training loop
def _line_data(n=64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return ArraySplit(x, (x[:, 0] > 0).long())


def test_non_finite_steps_change_nothing_and_are_counted():
    data = _line_data()
    data.x[:32] = float("nan")  # the first of two batches (no shuffle effect: every sample of batch 0 is bad)
    model = nn.Linear(4, 2)
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=0.1, schedule="constant", warmup_epochs=0)
    before = [p.clone() for p in model.parameters()]
    report = {}
    train_model(model, data, recipe, seed=0, progress=False, report=report)
    assert report["skipped_steps"] == 1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_clipping_bounds_the_first_step():
    data = _line_data()
    data.x.mul_(1e3)  # huge gradients
    model = nn.Linear(4, 2)
    recipe = TrainRecipe(epochs=1, batch_size=64, lr=0.1, schedule="constant", warmup_epochs=0, clip_norm=1.0,
                         weight_decay=0.0)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    train_model(model, data, recipe, seed=0, progress=False)
    moved = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    assert moved.norm() == pytest.approx(0.1, rel=1e-4)


def test_warmup_then_schedule():
    r = TrainRecipe(schedule="cosine")
    assert r.lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert r.lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert r.lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert r.lr_factor(55, 100, 10) == pytest.approx(0.5)
    safer = r.safer()
    assert safer.lr == r.lr / 2 and safer.warmup_epochs >= 2 and safer.clip_norm == 1.0


def test_cache_key_covers_the_code_version(monkeypatch):
    parts = {"role": "original", "seed": 0}
    first = cache_key(**parts)
    monkeypatch.setattr(train, "CODE_VERSION", "something-else")
    assert cache_key(**parts) != first


def test_split_fingerprint_covers_pixel_values():
    a = build_splits(SplitConfig(dataset="digits"), 0)
    assert a.fingerprint == build_splits(SplitConfig(dataset="digits"), 0).fingerprint
    assert a.fingerprint != build_splits(SplitConfig(dataset="digits"), 1).fingerprint


# ------------------------------------------------------------------------------------------ references
def test_failed_reference_is_retried_with_the_safer_recipe(tmp_path, monkeypatch):
    real = references.check_reference
    calls = []

    def fail_first_retrain(model, fit, held, num_classes, device="cpu"):
        out = real(model, fit, held, num_classes, device)
        calls.append(out)
        if len(calls) == 2:  # original passes; Retrain's first attempt "fails"
            return {**out, "ok": False, "reason": "forced"}
        return out

    monkeypatch.setattr(references, "check_reference", fail_first_retrain)
    with pytest.warns(UserWarning, match="safer recipe"):
        results = run_comparison(_quick(tmp_path, ("nudge_test",)))
    attempts = results["runs"]["retrain"]["0"]["attempts"]
    assert len(attempts) == 2 and attempts[0]["reason"] == "forced"
    assert attempts[1]["recipe"]["lr"] == attempts[0]["recipe"]["lr"] / 2
    table = (tmp_path / "out" / "results.md").read_text()
    assert "retrain seed 0 (forced) retrained with the safer recipe" in table


def test_reference_failing_twice_stops_the_run_naming_dataset_seed_role(tmp_path, monkeypatch):
    monkeypatch.setattr(references, "check_reference",
                        lambda *a, **k: {"train_acc": 10.0, "heldout_acc": 10.0, "ok": False, "reason": "at chance"})
    with pytest.raises(ReferenceTrainingError, match=r"original model failed its check on dataset 'digits', seed 3"):
        run_comparison(_quick(tmp_path, ("nudge_test",), seeds=(3,)))


def test_real_check_rejects_a_chance_model():
    s = build_splits(SplitConfig(dataset="digits"), 0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    check = references.check_reference(model, s.members, s.heldout, 10)
    assert not check["ok"] and "train accuracy" in check["reason"] and "held-out" in check["reason"]


# ------------------------------------------------------------------------------------------ table
def test_table_flags_collapse_and_noop_and_gives_paired_intervals(tmp_path):
    results = run_comparison(_quick(tmp_path, ("collapse_test", "nudge_test"), seeds=(0, 1),
                                    method_kwargs={"nudge_test": {"eps": 0.0}}))
    s = results["summary"]
    assert s["collapse_test"]["flags"] == {"at chance": [0, 1]}
    assert s["nudge_test"]["flags"] == {"no-op": [0, 1]}
    assert s["collapse_test"]["vs_best"]["other"] == "nudge_test" and s["collapse_test"]["vs_best"]["n"] == 2
    table = (tmp_path / "out" / "results.md").read_text()
    assert "⚠ at chance: seeds 0, 1" in table and "⚠ no-op: seeds 0, 1" in table
    assert "every original and Retrain passed" in table


def test_paired_interval_and_best_other():
    stat = paired_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert stat["mean"] == 2.0 and stat["lo"] == pytest.approx(2 - half) and stat["hi"] == pytest.approx(2 + half)
    assert math.isnan(paired_interval([1.0])["lo"])
    gaps = {"a": {"0": 1.0, "1": 2.0}, "b": {"0": 0.5, "1": 1.0}, "c": {"0": 3.0, "1": 3.0}}
    out = versus_best_other(gaps, ["a", "b", "c"])
    assert out["a"]["other"] == "b" and out["a"]["mean"] == 0.75
    assert out["b"]["other"] == "a" and out["b"]["mean"] == -0.75


# ------------------------------------------------------------------------------------------ defaults + tune
def _setting(**kw):
    base = {"dataset": "digits", "model": "cnn", "forget_mode": "random", "forget_ratio": 0.1, "forget_classes": [],
            "retain_access": 0.1}
    return {**base, **kw}


def test_defaults_lookup_prefers_the_closest_setting(tmp_path):
    path = tmp_path / "d.json"
    for access, lr in ((0.1, 1.0), (0.5, 2.0)):
        store_setting({"setting": _setting(retain_access=access), "protocol": {"seeds": [100]},
                       "methods": {"ga": {"chosen": {"lr": lr}}}}, path)
    assert lookup(_setting(retain_access=0.4), path)[0] == {"ga": {"lr": 2.0}}
    assert lookup(_setting(retain_access=0.1), path)[0] == {"ga": {"lr": 1.0}}
    assert lookup(_setting(dataset="mnist5k"), path) == ({}, None)
    store_setting({"setting": _setting(), "protocol": {"seeds": [100]}, "methods": {"ga": {"chosen": {"lr": 3.0}}}},
                  path)
    assert len(json.loads(path.read_text())["settings"]) == 2  # replaced, not duplicated


def test_runner_uses_tuned_defaults_and_set_overrides_them(tmp_path):
    store_setting({"setting": _setting(), "protocol": {"seeds": [0, 100]},
                   "methods": {"nudge_test": {"chosen": {"eps": 0.05}}}}, tmp_path / "defaults.json")
    results = run_comparison(_quick(tmp_path, ("nudge_test",)))
    assert results["runs"]["nudge_test"]["0"]["method_config"] == {"eps": 0.05}
    assert "overlap the reported seeds [0]" in (tmp_path / "out" / "results.md").read_text()
    over = run_comparison(_quick(tmp_path, ("nudge_test",), method_kwargs={"nudge_test": {"eps": 0.01}}))
    assert over["runs"]["nudge_test"]["0"]["method_config"] == {"eps": 0.01}
    untuned = run_comparison(_quick(tmp_path, ("nudge_test",), tuned_defaults=False, out=str(tmp_path / "u")))
    assert untuned["runs"]["nudge_test"]["0"]["method_config"] == {"eps": 0.02}


def test_tune_selects_without_reading_test_and_skips_flagged(tmp_path, monkeypatch):
    from ltu_fast.unlearn import references as references_mod
    from ltu_fast.unlearn import tune as tune_mod

    class Poison:
        def __getattr__(self, name):
            raise AssertionError("the tuning protocol read the test split")

    real = references_mod.build_splits  # where the tuner's splits come from (reference_pair)

    def no_test(config, seed):
        splits = real(config, seed)
        splits.test = Poison()
        return splits

    monkeypatch.setattr(references_mod, "build_splits", no_test)
    config = _quick(tmp_path, ("nudge_test", "collapse_test"), seeds=(100,))
    entry = tune_mod.tune(config, budget=3, command="test", defaults_file=tmp_path / "defaults.json")
    nudge = entry["methods"]["nudge_test"]
    trials = load_trials(tmp_path / "defaults.json")["settings"][0]["methods"]["nudge_test"]["trials"]
    assert len(trials) == nudge["configs"] == 3 and nudge["flagged"] == 1
    assert nudge["chosen"] != {"eps": 0.0}  # the no-op is excluded
    assert [t["flags"] for t in trials if t["config"] == {"eps": 0.0}] == [["no-op"]]
    assert "trials" not in nudge  # the defaults file keeps the choice and a summary, not the trials
    assert "warning" in entry["methods"]["collapse_test"]  # both of its configurations are flagged
    assert lookup(entry["setting"], tmp_path / "defaults.json")[0]["nudge_test"] == nudge["chosen"]
    again = tune_mod.tune(_quick(tmp_path, ("nudge_test",), seeds=(100,)), budget=3,
                          defaults_file=tmp_path / "defaults.json")
    assert set(again["methods"]) == {"nudge_test", "collapse_test"}  # same protocol: the other method is kept
    assert "| nudge_test | 3 |" in tune_mod.tune_table(again)
    with pytest.raises(ValueError, match="--seeds"):
        tune_mod.tune(_quick(tmp_path, ("nudge_test",), seeds=(0,)), budget=1)


def _store_one(path: str, ready) -> None:
    ready.set()
    store_setting({"setting": _setting(), "protocol": {"seeds": [100]}, "methods": {"ga": {"chosen": {}}}}, path)


def test_store_setting_waits_for_the_lock_of_a_side_by_side_tune(tmp_path):
    """Two tunes writing one defaults file: the second read-modify-write waits for the first."""
    import multiprocessing
    import time

    path = tmp_path / "d.json"
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_store_one, args=(str(path), ready))
    with locked(path):
        proc.start()
        assert ready.wait(60)
        time.sleep(1.0)
        assert not path.exists()  # blocked while another writer holds the lock
    proc.join(60)
    assert proc.exitcode == 0 and len(json.loads(path.read_text())["settings"]) == 1


def test_store_setting_merges_methods_of_one_protocol_and_replaces_another(tmp_path):
    path = tmp_path / "d.json"
    store_setting({"setting": _setting(), "protocol": {"seeds": [100]}, "methods": {"ga": {"chosen": {"lr": 1.0}}}}, path)
    store_setting({"setting": _setting(), "protocol": {"seeds": [100]}, "methods": {"ft": {"chosen": {"lr": 2.0}}}}, path)
    assert set(lookup(_setting(), path)[0]) == {"ga", "ft"}
    with pytest.warns(UserWarning, match=r"\['ft', 'ga'\]"):
        store_setting({"setting": _setting(), "protocol": {"seeds": [101]}, "methods": {"rl": {"chosen": {}}}}, path)
    assert set(lookup(_setting(), path)[0]) == {"rl"}


def test_docs_method_table_lists_every_search_space():
    """docs/methods.md's "knobs searched" column is the code's ``search_space``, value for value."""
    import re

    import ltu_fast.unlearn.baselines
    import ltu_fast.unlearn.ltu  # noqa: F401
    from ltu_fast.unlearn.api import METHODS
    from ltu_fast.unlearn.tune import space_text

    doc = (Path(__file__).parents[1] / "docs" / "methods.md").read_text()
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", doc, re.MULTILINE)}
    for name, method in METHODS.items():
        if method.search_space and method.__module__.startswith("ltu_fast."):  # not the test-registered ones
            assert space_text(method) in rows.get(name, ""), f"docs/methods.md: the row of {name!r} is stale"


def test_docs_tuning_page_is_what_tune_show_prints():
    """docs/tuning.md holds ``ltu-fast tune --show`` for the packaged defaults, setting by setting."""
    from ltu_fast.unlearn.defaults import load_defaults
    from ltu_fast.unlearn.tune import tune_table

    doc = (Path(__file__).parents[1] / "docs" / "tuning.md").read_text()
    for entry in load_defaults()["settings"]:
        assert tune_table(entry) in doc, f"docs/tuning.md: stale or missing setting {entry['setting']}"


def test_comparisons_and_tunes_at_any_access_level_share_one_pair_of_references(tmp_path):
    """Original and Retrain do not depend on the retain-access share: trained once per seed, then cached."""
    from ltu_fast.unlearn.tune import tune

    first = run_comparison(_quick(tmp_path, ("nudge_test",), retain_access=0.1))
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    second = run_comparison(_quick(tmp_path, ("nudge_test",), retain_access=0.3, out=str(tmp_path / "o2")))
    tune(_quick(tmp_path, ("nudge_test",), retain_access=0.05, seeds=(100,)), budget=1,
         defaults_file=tmp_path / "defaults.json")
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 4  # seed 0's pair, and seed 100's for the tune
    assert second["runs"]["retrain"]["0"]["cached"] and not first["runs"]["retrain"]["0"]["cached"]
    for key in ("UA", "TA", "MIA"):  # the same models, scored on the same forget and test data
        assert second["runs"]["retrain"]["0"][key] == first["runs"]["retrain"]["0"][key]


def test_packaged_defaults_hold_choices_and_trials_stay_out_of_the_wheel():
    """The runner reads only the choices; the trials are evidence kept beside them in the repository."""
    from pathlib import Path

    import tomllib

    from ltu_fast.unlearn.defaults import DEFAULTS_PATH, load_defaults, trials_path

    root = Path(__file__).resolve().parents[1]
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert package_data["ltu_fast.unlearn"] == ["defaults.json"]
    assert all("trials" not in rec for e in load_defaults()["settings"] for rec in e["methods"].values())
    trials = load_trials()["settings"]
    assert [e["setting"] for e in trials] == [e["setting"] for e in load_defaults()["settings"]]
    assert trials_path() == DEFAULTS_PATH.with_name("defaults.trials.json")
