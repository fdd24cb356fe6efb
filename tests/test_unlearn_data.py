"""Splits, loaders, models and the training cache of ltu_fast.unlearn."""

import pickle

import numpy as np
import pytest
import torch

from ltu_fast.unlearn.data import SplitConfig, build_splits, load_dataset
from ltu_fast.unlearn.models import build_model, model_factory
from ltu_fast.unlearn.train import TrainRecipe, train_cached

DIGITS = SplitConfig(dataset="digits")


def _ids(splits):
    """Identify samples by their bytes so disjointness is checked across separately stored splits."""
    def rows(split):
        return {x.numpy().tobytes() for x in split.x}
    return rows(splits.forget), rows(splits.retain), rows(splits.heldout), rows(splits.test)


def test_splits_are_disjoint_and_cover_members():
    s = build_splits(DIGITS, seed=0)
    forget, retain, held, test = _ids(s)
    assert not (forget & retain) and not (forget & held) and not (retain & held)
    assert not ((forget | retain | held) & test)
    assert len(s.forget_idx) + len(s.retain_idx) == len(s.members)
    assert set(s.access_idx) <= set(s.retain_idx)
    assert len(s.forget_idx) == round(0.1 * len(s.members))
    assert len(s.access_idx) == round(0.1 * len(s.retain_idx))
    task = s.task(lambda: None)
    assert len(task.forget) == len(s.forget_idx) and len(task.retain_full) == len(s.retain_idx)
    assert task.seed == 0 and not hasattr(task, "test")


def test_splits_deterministic_by_seed():
    a, b, c = build_splits(DIGITS, 0), build_splits(DIGITS, 0), build_splits(DIGITS, 1)
    assert np.array_equal(a.forget_idx, b.forget_idx) and np.array_equal(a.access_idx, b.access_idx)
    assert torch.equal(a.members.x, b.members.x) and a.fingerprint == b.fingerprint
    assert not np.array_equal(a.forget_idx, c.forget_idx) and a.fingerprint != c.fingerprint


def test_classwise_forgetting_removes_exactly_those_classes():
    s = build_splits(SplitConfig(dataset="digits", forget_mode="class", forget_classes=(3, 7)), 0)
    assert set(s.forget.y.tolist()) == {3, 7}
    assert not {3, 7} & set(s.retain.y.tolist())
    assert int(((s.members.y == 3) | (s.members.y == 7)).sum()) == len(s.forget)
    assert not {3, 7} & set(s.test.y.tolist()) and set(s.test_forgotten.y.tolist()) == {3, 7}


@pytest.mark.parametrize(("config", "option"), [
    (SplitConfig(dataset="nope"), "--dataset"),
    (SplitConfig(dataset="cifar10"), "--data-root"),
    (SplitConfig(dataset="cifar10", data_root="/does/not/exist"), "--data-root"),
    (SplitConfig(dataset="digits", forget_ratio=0.0), "--forget-ratio"),
    (SplitConfig(dataset="digits", forget_ratio=1.5), "--forget-ratio"),
    (SplitConfig(dataset="digits", retain_access=0.0), "--retain-access"),
    (SplitConfig(dataset="digits", forget_mode="bogus"), "--forget-mode"),
    (SplitConfig(dataset="digits", forget_mode="class"), "--forget-classes"),
    (SplitConfig(dataset="digits", forget_mode="class", forget_classes=(12,)), "--forget-classes"),
    (SplitConfig(dataset="digits", forget_mode="class", forget_classes=tuple(range(10))), "--forget-classes"),
    (SplitConfig(dataset="digits", forget_classes=(1,)), "--forget-classes"),
    (SplitConfig(dataset="digits", forget_ratio=1e-5), "--forget-ratio"),
])
def test_bad_inputs_name_the_option(config, option):
    with pytest.raises((ValueError, FileNotFoundError), match=option):
        build_splits(config, 0)


def test_mnist5k_embedded():
    raw = load_dataset("mnist5k")
    assert raw.x_train.shape == (5000, 1, 28, 28) and np.bincount(raw.y_train).tolist() == [500] * 10
    assert 0.0 <= raw.x_train.min() and raw.x_train.max() <= 1.0


def test_npz_loader(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(path, x=rng.integers(0, 255, (60, 6, 6, 3), dtype=np.uint8), y=np.arange(60) % 3)
    s = build_splits(SplitConfig(dataset="npz", data_root=str(path)), 0)
    assert s.input_shape == (3, 6, 6) and s.num_classes == 3


def test_cifar_pickle_layout(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 255, (20, 3072), dtype=np.uint8), b"labels": list(range(10)) * 2}
        (base / name).write_bytes(pickle.dumps(batch))
    raw = load_dataset("cifar10", str(tmp_path))
    assert raw.x_train.shape == (100, 3, 32, 32) and raw.x_test.shape == (20, 3, 32, 32)


def test_imagefolder(tmp_path):
    from PIL import Image

    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(10):
            Image.new("L", (5, 5), color=i * 10).save(tmp_path / cls / f"{i}.png")
    raw = load_dataset("imagefolder", str(tmp_path))
    assert raw.x_train.shape == (20, 3, 5, 5) and raw.num_classes == 2 and raw.x_test is None


@pytest.mark.parametrize(("name", "shape"), [("cnn", (1, 28, 28)), ("cnn", (1, 8, 8)), ("mlp", (1, 8, 8)),
                                             ("resnet18", (3, 32, 32))])
def test_models_forward(name, shape):
    model = build_model(name, shape, 10)
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_unknown_model_names_option():
    with pytest.raises(ValueError, match="--model"):
        build_model("vgg", (1, 8, 8), 10)


def test_training_cache_hits_on_second_call(tmp_path):
    s = build_splits(DIGITS, 0)
    factory = model_factory("mlp", s.input_shape, s.num_classes)
    recipe = TrainRecipe(epochs=1)
    key = {"data": s.fingerprint, "model": "mlp"}
    data = s.members.subset(torch.arange(256))
    first, secs, hit = train_cached("original", factory, data, recipe, 0, key, tmp_path, progress=False)
    second, secs2, hit2 = train_cached("original", factory, data, recipe, 0, key, tmp_path, progress=False)
    assert (hit, hit2) == (False, True) and secs == secs2
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    _, _, other = train_cached("retrain", factory, data, recipe, 0, key, tmp_path, progress=False)
    assert not other  # the role is part of the key
