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


@pytest.mark.parametrize("script", ["two_task_adamw.py", "unlearn_tiny_lm.py", "unlearn_own_model.py"])
def test_examples_document_how_to_run_them(script):
    source = (Path(__file__).resolve().parents[1] / "examples" / script).read_text()
    assert f"python examples/{script}" in source
