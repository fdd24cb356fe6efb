"""The examples/ scripts run and do what they say (shortened runs, same code paths)."""

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
    short = ["--seeds", "0", "--epochs", "2", "--batch", "64", "--lr", "0.01", "--train-pairs", "4000", "--test-pairs",
             "500", "--out", str(tmp_path)]
    runs = multimnist.main(["--aggregators", "sum", "pcgrad", *short])
    for name in ("sum", "pcgrad"):
        assert runs[name]["0"]["left"] > 25 and runs[name]["0"]["right"] > 25  # chance is 10
    assert "| pcgrad |" in (tmp_path / "results.md").read_text() and (tmp_path / "results.png").exists()
    again = multimnist.main(["--aggregators", "sum", *short])
    assert again["sum"]["0"] == runs["sum"]["0"]  # stored runs are not recomputed


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
