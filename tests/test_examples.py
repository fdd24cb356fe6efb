"""The examples/ scripts run and do what they say (shortened runs, same code paths)."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))


def test_two_task_adamw_learns_both_tasks():
    import two_task_adamw

    result = two_task_adamw.main(steps=150, verbose=False)
    assert result["test_mse_a"] < 0.2 * result["baseline_mse_a"]
    assert result["test_mse_b"] < 0.2 * result["baseline_mse_b"]


def test_unlearn_tiny_lm_forgets_and_keeps_the_rest():
    import unlearn_tiny_lm

    r = unlearn_tiny_lm.main(pretrain_steps=200, unlearn_steps=20, verbose=False)
    assert r["before_forget_loss"] < 1.0, "pre-training did not learn the forget set"
    assert r["after_forget_loss"] > r["before_forget_loss"] + 1.0
    assert r["after_retain_test_loss"] < r["before_retain_test_loss"] + 0.3


def test_multimnist_pairs_and_a_short_run(tmp_path):
    """Two digits per image with both labels; a short run learns both tasks and writes its outputs."""
    import multimnist

    images, labels = multimnist.load_digits()
    x, left, right = multimnist.make_pairs(images[::100], labels[::100], 64, seed=0)
    assert x.shape == (64, 1, 28, 28) and 0.0 <= x.min() and x.max() <= 1.0
    assert set(left.tolist()) <= set(range(10)) and (left != right).any()
    short = ["--seeds", "0", "--epochs", "2", "--batch", "64", "--lr", "0.01", "--train-pairs", "4000", "--val-pairs",
             "200", "--test-pairs", "500", "--out", str(tmp_path)]
    runs = multimnist.main(["--aggregators", "sum", "pcgrad", *short])
    for name in ("sum", "pcgrad"):
        assert runs[name]["0"]["left"] > 25 and runs[name]["0"]["right"] > 25  # chance is 10
        assert runs[name]["0"]["val_left"] > 25 and runs[name]["0"]["skipped_steps"] == 0
    assert "| pcgrad | 1/1 |" in (tmp_path / "results.md").read_text() and (tmp_path / "results.png").exists()
    again = multimnist.main(["--aggregators", "sum", *short])
    assert again["sum"]["0"] == runs["sum"]["0"]  # stored runs are not recomputed


def test_multimnist_splits_share_no_source_digit():
    """Validation and test pairs are drawn from source digits that no training pair uses."""
    import multimnist

    parts = {k: set(v.tolist()) for k, v in multimnist.source_digits(0).items()}
    assert {k: len(v) for k, v in parts.items()} == {"train": 3500, "val": 500, "test": 1000}
    assert len(parts["train"] | parts["val"] | parts["test"]) == 5000
    data = multimnist.splits(0, 50, 40, 30)
    assert {k: len(v[0]) for k, v in data.items()} == {"train": 50, "val": 40, "test": 30}


def test_multimnist_table_names_runs_at_chance_and_keeps_them_out_of_the_means():
    import multimnist

    def run(left: float, right: float) -> dict:
        return {"left": left, "right": right, "mean": (left + right) / 2, "step_ms": 10.0, "conflict_rate": 0.5,
                "skipped_steps": 0}

    runs = {"sum": {"0": run(80, 80), "1": run(82, 82), "2": run(84, 84)},
            "pcgrad": {"0": run(81, 81), "1": run(9.8, 11.3), "2": run(86, 86)},
            "mgda": {"0": run(10, 10), "1": run(10, 10), "2": run(10, 10)}}
    rows = {line.split(" | ")[0][2:]: line for line in multimnist.table(runs, ["sum", "pcgrad", "mgda"],
                                                                         [0, 1, 2]).splitlines()[2:]}
    assert rows["sum"].endswith("| none |") and "82.00 ± 2.00" in rows["sum"]
    assert "| 2/3 | 83.50 ± 3.54 |" in rows["pcgrad"] and "seed 1: at chance (9.8 / 11.3)" in rows["pcgrad"]
    assert "+1.50 ± 6.35" in rows["pcgrad"]  # paired with sum on seeds 0 and 2: diffs 1 and 2, t(0.975, 1) = 12.71
    assert "| 0/3 | – |" in rows["mgda"]


def test_multimnist_tuning_chooses_by_validation_and_refuses_the_reported_seeds(tmp_path, monkeypatch):
    import multimnist

    def fake_train(name, seed, data, epochs, batch, lr):  # validation prefers lr 1e-3, test prefers 1e-2
        val, test = (90.0, 50.0) if lr == 1e-3 else (60.0, 95.0)
        return {"val_left": val, "val_right": val, "val_mean": val, "left": test, "right": test, "mean": test,
                "step_ms": 1.0, "skipped_steps": 0, "conflict_rate": 0.0}

    monkeypatch.setattr(multimnist, "train", fake_train)
    monkeypatch.setattr(multimnist, "GRID", [(1, 32, 1e-2), (1, 32, 1e-3), (2, 64, 1e-2)])
    tiny = ["--train-pairs", "16", "--val-pairs", "16", "--test-pairs", "16", "--out", str(tmp_path)]
    with pytest.raises(SystemExit, match="overlap"):
        multimnist.main(["--tune", "--tune-seeds", "3", *tiny])
    assert multimnist.main(["--tune", "--tune-seeds", "100", "101", *tiny]) == {"epochs": 1, "batch": 32, "lr": 1e-3}
    stored = json.loads((tmp_path / "tuning.json").read_text())["runs"]
    assert set(stored["epochs=2 batch=64 lr=0.01"]) == {"sum", "pcgrad"}
    assert set(stored["epochs=2 batch=64 lr=0.01"]["pcgrad"]) == {"100", "101"}
    assert "| 1 | 32 | 0.001 | 90.00 | 90.00 | 90.00 |" in (tmp_path / "tuning.md").read_text()


def test_unlearn_own_model_from_python_and_from_its_printed_command(tmp_path, capsys):
    import shlex

    import unlearn_own_model

    from ltu_fast.cli import main

    scores = unlearn_own_model.main(epochs=3, methods=("ga",), out=tmp_path, verbose=False)
    assert set(scores) == {"original", "retrain", "ga"} and scores["retrain"]["gap"] == 0.0
    assert scores["original"]["TA"] > 80 and scores["ga"]["UA"] >= scores["original"]["UA"]
    command = shlex.split(capsys.readouterr().out.strip().splitlines()[-1])
    assert command[:2] == ["ltu-fast", "unlearn"]
    assert main([*command[1:], "--methods", "ga", "--no-progress"]) == 0
    assert (tmp_path / "run" / "models" / "ga.pt").exists()


@pytest.mark.parametrize("script", ["two_task_adamw.py", "unlearn_tiny_lm.py", "unlearn_own_model.py", "multimnist.py"])
def test_examples_document_how_to_run_them(script):
    source = (Path(__file__).resolve().parents[1] / "examples" / script).read_text()
    assert f"python examples/{script}" in source
