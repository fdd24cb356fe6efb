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


@pytest.mark.parametrize("script", ["two_task_adamw.py", "unlearn_tiny_lm.py"])
def test_examples_document_how_to_run_them(script):
    source = (Path(__file__).resolve().parents[1] / "examples" / script).read_text()
    assert f"python examples/{script}" in source
