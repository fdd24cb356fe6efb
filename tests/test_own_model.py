"""``ltu-fast unlearn --original CKPT``: your own checkpoint on data in the real on-disk formats (CIFAR
python pickles, an ImageFolder of PNGs, npz), written here; every bad input is an error naming it,
with nothing written."""

import json
import pickle
import re

import numpy as np
import pytest
import torch

from ltu_fast.cli import _config, build_parser, main
from ltu_fast.unlearn.data import train_test
from ltu_fast.unlearn.models import build_model
from ltu_fast.unlearn.presets import PRESETS


def write_cifar10(root, per_batch=12, test=20):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", per_batch) for i in range(1, 6)] + [("test_batch", test)]:
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
        (base / name).write_bytes(pickle.dumps(batch))
    return root


def write_imagefolder(root, classes=3, train=6, test=4, odd=None):
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, n in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / part / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                size = odd if (odd and part == "train" and c == 1 and i == 2) else 8
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def write_npz(path, n=60, classes=3):
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 255, (n, 6, 6), dtype=np.uint8), y=np.arange(n) % classes)
    return path


def write_checkpoint(path, model="cnn", shape=(3, 8, 8), classes=3, whole=False):
    torch.manual_seed(0)
    net = build_model(model, shape, classes)
    torch.save(net if whole else net.state_dict(), path)
    return path


def run(argv, capsys):
    code = main(["unlearn", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cifar_pickles_classwise_end_to_end(tmp_path, capsys):
    root = write_cifar10(tmp_path / "data")
    ckpt = write_checkpoint(tmp_path / "model.pt", shape=(3, 32, 32), classes=10)
    out = tmp_path / "out"
    code, printed, err = run(["--dataset", "cifar10", "--data-root", str(root), "--original", str(ckpt),
                              "--forget-classes", "3", "--methods", "ga", "--out", str(out)], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert list(results["rows"]) == ["original", "ga"] and "UA_test" in results["rows"]["ga"]
    assert results["normalization"]["mean"] == [0.4914, 0.4822, 0.4465]  # CIFAR-10's standard constants
    assert results["sizes"]["forget"] == 5 and results["sizes"]["test_forgotten"] == 1
    state = torch.load(out / "models" / "ga.pt", weights_only=True)
    build_model("cnn", (3, 32, 32), 10).load_state_dict(state)
    assert "| ga |" in printed and (out / "results.md").exists()


def test_imagefolder_of_pngs_end_to_end_with_npy_indices_and_retrain(tmp_path, capsys):
    root = write_imagefolder(tmp_path / "data")
    train, _, _ = train_test("imagefolder", root)
    np.save(tmp_path / "forget.npy", np.array([0, 5, 7, 12]))
    np.save(tmp_path / "held.npy", np.array([1, 2, 17]))
    out = tmp_path / "out"
    code, _printed, err = run(["--dataset", "imagefolder", "--data-root", str(root), "--original",
                              str(write_checkpoint(tmp_path / "m.pt")), "--forget-index", str(tmp_path / "forget.npy"),
                              "--heldout-index", str(tmp_path / "held.npy"), "--methods", "ga", "retrain",
                              "--recipe", "epochs=1", "--out", str(out)], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["sizes"] == {"train": len(train), "forget": 4, "retain": len(train) - 7, "retain_access": 1,
                                "heldout": 3, "test": 12, "test_forgotten": 0}
    assert results["heldout"] == "--heldout-index"
    assert "gap" in results["rows"]["ga"] and results["rows"]["retrain"]["gap"] == 0.0
    assert sorted(p.name for p in (out / "models").iterdir()) == ["ga.pt", "retrain.pt"]


def test_npz_end_to_end_with_text_indices_and_a_pickled_module(tmp_path, capsys):
    path = write_npz(tmp_path / "d.npz")
    train, _, _ = train_test("npz", path)  # no test split in the file: the seeded stratified cut
    (tmp_path / "forget.txt").write_text("3, 4\n10\n")
    ckpt = write_checkpoint(tmp_path / "whole.pt", model="mlp", shape=(1, 6, 6), whole=True)
    out = tmp_path / "out"
    code, _, err = run(["--dataset", "npz", "--data-root", str(path), "--original", str(ckpt), "--pickled-model",
                        "--forget-index", str(tmp_path / "forget.txt"), "--methods", "ga", "ft", "--set", "ft.epochs=1",
                        "--out", str(out)], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["sizes"]["train"] == len(train) == 48 and results["sizes"]["forget"] == 3
    assert results["normalization"]["source"] == "the training split's per-channel statistics"
    assert isinstance(torch.load(out / "models" / "ft.pt", weights_only=False), torch.nn.Module)


def test_preset_sets_the_salun_recipe_and_model():
    args = build_parser().parse_args(["--preset", "salun"])
    config = _config(args)
    assert config.recipe == PRESETS["salun"].recipe and config.model == "resnet18"
    r = config.recipe
    assert (r.epochs, r.batch_size, r.lr, r.momentum, r.weight_decay, r.schedule, r.milestones) == \
        (182, 256, 0.1, 0.9, 5e-4, "step", (91, 136))
    assert (r.warmup_epochs, r.clip_norm, r.augment, r.amp) == (0.0, 0.0, True, True)


def test_preset_trains_retrain_with_augmentation_on_cifar_pickles(tmp_path, capsys):
    """The preset's wiring for one epoch (its model swapped for the small cnn: ResNet-18 is minutes here)."""
    root = write_cifar10(tmp_path / "data")
    ckpt = write_checkpoint(tmp_path / "model.pt", shape=(3, 32, 32), classes=10)
    (tmp_path / "f.txt").write_text("0 1 2")
    out = tmp_path / "out"
    code, _, err = run(["--dataset", "cifar10", "--data-root", str(root), "--original", str(ckpt), "--preset", "salun",
                        "--model", "cnn", "--recipe", "epochs=1", "milestones=[]", "--forget-index",
                        str(tmp_path / "f.txt"), "--methods", "retrain", "--out", str(out)], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    ran = results["rows"]["retrain"]["info"]["recipe"]  # what Retrain trained with
    assert ran == {**results["config"]["recipe"], "milestones": []}
    assert (ran["augment"], ran["amp"], ran["epochs"], ran["batch_size"], ran["lr"]) == (True, True, 1, 256, 0.1)
    assert results["rows"]["retrain"]["method_config"] == {"progress": False}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--preset", "nope"])


def _bad_cases(tmp):
    """(name, argv, the text the error must contain): each on an otherwise valid npz request."""
    data = write_npz(tmp / "d.npz")
    ckpt = write_checkpoint(tmp / "ok.pt", shape=(1, 6, 6))
    (tmp / "corrupt.pt").write_bytes(b"not a checkpoint at all")
    write_checkpoint(tmp / "mlp.pt", model="mlp", shape=(1, 6, 6))
    write_checkpoint(tmp / "five.pt", shape=(1, 6, 6), classes=5)
    write_checkpoint(tmp / "whole.pt", shape=(1, 6, 6), whole=True)
    write_checkpoint(tmp / "whole5.pt", shape=(1, 6, 6), classes=5, whole=True)
    for name, text in (("range.txt", "1 2 48"), ("dup.txt", "1 2 2"), ("empty.txt", " \n"), ("float.txt", "1 2.5"),
                       ("held.txt", "2 9")):
        (tmp / name).write_text(text)
    np.save(tmp / "float.npy", np.array([1.0, 2.0]))
    (tmp / "used").mkdir()
    (tmp / "used" / "results.json").write_text("{}")
    base = ["--dataset", "npz", "--data-root", str(data)]
    forget = ["--forget-index", str(tmp / "dup.txt").replace("dup", "held")]
    return [
        ("missing checkpoint", [*base, "--original", str(tmp / "nope.pt"), *forget], "--original: .*nope.pt does not exist"),
        ("corrupt checkpoint", [*base, "--original", str(tmp / "corrupt.pt"), *forget], "--original: cannot read"),
        ("keys", [*base, "--original", str(tmp / "mlp.pt"), *forget], "does not fit --model cnn .*missing key 'features"),
        ("shapes", [*base, "--original", str(tmp / "five.pt"), *forget],
         r"'head.3.weight' has shape \(5, 128\) in the checkpoint, \(3, 128\) in the model"),
        ("pickled without the flag", [*base, "--original", str(tmp / "whole.pt"), *forget], "pass --pickled-model"),
        ("a state_dict with the flag", [*base, "--original", str(ckpt), "--pickled-model", *forget],
         "not a pickled nn.Module"),
        ("labels beyond the model's classes", [*base, "--original", str(tmp / "whole5.pt"), "--pickled-model", *forget],
         r"output of shape \(1, 5\), but the data has 3 classes"),
        ("index out of range", [*base, "--original", str(ckpt), "--forget-index", str(tmp / "range.txt")],
         "--forget-index: index 48 is out of range: the training split has 48 samples"),
        ("duplicated index", [*base, "--original", str(ckpt), "--forget-index", str(tmp / "dup.txt")],
         "--forget-index: index 2 appears 2 times"),
        ("no index", [*base, "--original", str(ckpt), "--forget-index", str(tmp / "empty.txt")], "holds no indices"),
        ("not an index", [*base, "--original", str(ckpt), "--forget-index", str(tmp / "float.txt")],
         "holds '2.5', not an integer index"),
        ("float npy", [*base, "--original", str(ckpt), "--forget-index", str(tmp / "float.npy")], "must be integers"),
        ("missing index file", [*base, "--original", str(ckpt), "--forget-index", str(tmp / "no.txt")],
         "--forget-index: .*no.txt does not exist"),
        ("heldout overlaps forget", [*base, "--original", str(ckpt), *forget, "--heldout-index", str(tmp / "held.txt")],
         "--heldout-index: index 2 is also to be forgotten"),
        ("both forget options", [*base, "--original", str(ckpt), *forget, "--forget-classes", "1"], "give exactly one"),
        ("a class that does not exist", [*base, "--original", str(ckpt), "--forget-classes", "7"], "classes 0..2"),
        ("two seeds", [*base, "--original", str(ckpt), *forget, "--seeds", "0", "1"], "takes one seed"),
        ("retrain of a pickled module", [*base, "--original", str(tmp / "whole.pt"), "--pickled-model", *forget,
                                         "--methods", "retrain"], "a pickled module cannot be re-initialised"),
        ("results already there", [*base, "--original", str(ckpt), *forget, "--out", str(tmp / "used")],
         "already holds results"),
        ("mixed image sizes", ["--dataset", "imagefolder", "--data-root", str(write_imagefolder(tmp / "odd", odd=9)),
                               "--original", str(ckpt), *forget], "images of different sizes: .*9x9"),
        ("normalisation of another channel count", [*base, "--original", str(ckpt), *forget, "--mean", "0.5", "0.5",
                                                    "--std", "1", "1"], "2 values for 1-channel images"),
        ("an option of the own-model mode alone", [*forget], "--forget-index need --original"),
    ]


def test_every_bad_input_is_an_error_naming_it_and_nothing_is_written(tmp_path, capsys):
    for name, argv, match in _bad_cases(tmp_path):
        out = tmp_path / "out"
        argv = [*argv, *([] if "--out" in argv else ["--out", str(out)]), *([] if "--methods" in argv else ["--methods", "ga"])]
        code, _, err = run(argv, capsys)
        assert code == 2, name
        assert err.startswith("ltu-fast unlearn: error: "), name
        assert re.search(match, err), f"{name}: {err}"
        assert not out.exists(), f"{name}: wrote {out}"
    assert (tmp_path / "used" / "results.json").read_text() == "{}"
