"""Unlearn your own model: a classifier you trained, your data as torch Datasets, samples to remove.

scikit-learn's 8x8 digits stand in for your data and a small CNN, trained here, for your model. The
example removes 100 of its training samples with LTU and with fine-tuning, retrains a model without
them (the gold standard the others are measured against) and prints every model's metrics. Then it
writes what the command line takes (the data as an npz, the checkpoint, the forget indices) and
prints the command that does the same from those files. CPU, about ten seconds:

    python examples/unlearn_own_model.py [--out DIR]
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset, TensorDataset

from ltu_fast.unlearn import UnlearnTask, evaluate_unlearning, unlearn
from ltu_fast.unlearn.models import model_factory
from ltu_fast.unlearn.splits import ArraySplit
from ltu_fast.unlearn.train import TrainRecipe, train_model

KEYS = ("UA", "RA", "TA", "MIA", "gap")


def digits(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(x_train, y_train, x_test, y_test): 8x8 images in [0, 1], a seeded 80/20 cut."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0, torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    test, train = order[:360], order[360:]
    return x[train], y[train], x[test], y[test]


def main(epochs: int = 8, methods: tuple[str, ...] = ("ltu", "ft"), out: str | Path | None = None,
         verbose: bool = True) -> dict[str, dict[str, float]]:
    x_train, y_train, x_test, y_test = digits()
    mean, std = x_train.mean().item(), x_train.std().item()  # the normalisation the model trains with
    train_set = TensorDataset((x_train - mean) / std, y_train)  # any map-style Dataset of (tensor, int)
    test_set = TensorDataset((x_test - mean) / std, y_test)

    # Your model (here trained with ltu_fast's loop, so that Retrain can repeat exactly its recipe).
    recipe = TrainRecipe(epochs=epochs, batch_size=64, lr=0.05)
    factory = model_factory("cnn", (1, 8, 8), 10)
    torch.manual_seed(0)
    model = train_model(factory(), ArraySplit(*train_set.tensors), recipe, seed=0, progress=False)

    # What to remove; the share of the rest methods may read (here 20%); unseen data they may use;
    # and a test half that only scores.
    rng = np.random.default_rng(0)
    forget_idx = np.sort(rng.choice(len(train_set), 100, replace=False))
    retain_idx = np.setdiff1d(np.arange(len(train_set)), forget_idx)
    access_idx = np.sort(rng.choice(retain_idx, len(retain_idx) // 5, replace=False))
    forget, retain = Subset(train_set, forget_idx.tolist()), Subset(train_set, retain_idx.tolist())
    heldout, test = Subset(test_set, range(0, 360, 2)), Subset(test_set, range(1, 360, 2))
    task = UnlearnTask.from_datasets(forget=forget, retain=Subset(train_set, access_idx.tolist()), heldout=heldout,
                                     num_classes=10, retain_full=retain, model_factory=factory,
                                     train_recipe=vars(recipe), progress=False)

    retrained = unlearn(model, task, "retrain").model
    reference = evaluate_unlearning(retrained, forget, retain, test)
    scores = {"original": evaluate_unlearning(model, forget, retain, test, reference=reference),
              "retrain": {**reference, "gap": 0.0}}
    for method in methods:
        result = unlearn(model, task, method)  # works on a copy; your model is left as it was
        scores[method] = evaluate_unlearning(result.model, forget, retain, test, reference=reference)
    if verbose:
        print("model     " + "".join(f"{k:>8}" for k in KEYS))
        for name, s in scores.items():
            print(f"{name:<10}" + "".join(f"{s[k]:8.2f}" for k in KEYS))
    if out is not None:
        print(cli_files(Path(out), model, (x_train, y_train, x_test, y_test), forget_idx, (mean, std)))
    return scores


def cli_files(out: Path, model: torch.nn.Module, data: tuple[torch.Tensor, ...], forget_idx: np.ndarray,
              norm: tuple[float, float]) -> str:
    """Write the data (npz), the checkpoint and the forget indices; return the command that unlearns from them."""
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "digits.npz", **{k: t.numpy() for k, t in zip(("x_train", "y_train", "x_test", "y_test"), data)})
    torch.save(model.state_dict(), out / "model.pt")
    np.savetxt(out / "forget.txt", forget_idx, fmt="%d")
    return shlex.join(["ltu-fast", "unlearn", "--dataset", "npz", "--data-root", str(out / "digits.npz"),
                       "--original", str(out / "model.pt"), "--model", "cnn", "--forget-index", str(out / "forget.txt"),
                       "--mean", f"{norm[0]:.6f}", "--std", f"{norm[1]:.6f}", "--retain-access", "0.2",
                       "--methods", "ltu", "ft", "retrain", "--recipe", "epochs=8", "batch_size=64", "lr=0.05",
                       "--out", str(out / "run")])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="where to write the command line's inputs (default: a temporary folder)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # models this small run faster on one thread, and bitwise the same every time
    main(out=args.out or tempfile.mkdtemp(prefix="ltu_fast_own_"))
