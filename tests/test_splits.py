"""The data interface: streamed splits give the in-memory numbers bitwise (batches, evaluation, every
method), user Datasets and DataLoaders plug in, and a bad sample is an error naming where it is."""

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from ltu_fast.unlearn import UnlearnTask, evaluate_unlearning, unlearn
from ltu_fast.unlearn.api import METHOD_ORDER, METHODS
from ltu_fast.unlearn.data import SplitConfig, build_splits
from ltu_fast.unlearn.metrics import evaluate_model
from ltu_fast.unlearn.models import model_factory
from ltu_fast.unlearn.splits import ArraySplit, DatasetSplit, as_split, concat_splits
from ltu_fast.unlearn.train import TrainRecipe, train_model


def streamed(split: ArraySplit, name: str = "data", **options) -> DatasetSplit:
    return DatasetSplit(TensorDataset(split.x, split.y), name, **options)


@pytest.fixture(scope="module")
def digits():
    """Class-wise digits splits (class 3), a briefly trained cnn and the task both ways."""
    splits = build_splits(SplitConfig(dataset="digits", forget_mode="class", forget_classes=(3,)), 0)
    factory = model_factory("cnn", splits.input_shape, splits.num_classes)
    torch.manual_seed(0)
    model = train_model(factory(), splits.members, TrainRecipe(epochs=2), 0, progress=False)
    return splits, factory, model


def test_streamed_batches_equal_in_memory_batches():
    g = torch.Generator().manual_seed(3)
    data = ArraySplit(torch.randn(23, 2, 3, generator=g), torch.randint(0, 4, (23,), generator=g))
    for workers in (0, 2):
        stream = streamed(data, num_workers=workers)
        for kwargs in ({}, {"shuffle": True}, {"shuffle": True, "drop_last": True}):
            mem = list(data.batches(5, generator=torch.Generator().manual_seed(1), **kwargs))
            got = list(stream.batches(5, generator=torch.Generator().manual_seed(1), **kwargs))
            assert len(mem) == len(got) and all(torch.equal(a, b) for m, s in zip(mem, got) for a, b in zip(m, s))
    index = torch.tensor([7, 0, 22])
    assert all(torch.equal(a, b) for a, b in zip(data.take(index), stream.take(index)))
    assert torch.equal(stream.labels(), data.y) and torch.equal(stream.subset(index).labels(), data.y[index])
    both = concat_splits(data, stream.subset(index))
    assert len(both) == 26 and torch.equal(both.take(torch.tensor([23, 25]))[0], data.x[[7, 22]])


def test_streamed_evaluation_equals_in_memory_on_digits(digits):
    splits, _, model = digits
    mem = evaluate_model(model, splits.forget, splits.retain, splits.test, "cpu", 0, splits.test_forgotten)
    parts = [streamed(s, n) for s, n in ((splits.forget, "forget"), (splits.retain, "retain"), (splits.test, "test"),
                                         (splits.test_forgotten, "test_forgotten"))]
    assert evaluate_model(model, *parts[:3], None, 0, parts[3]) == mem
    loaders = [DataLoader(TensorDataset(s.x, s.y), batch_size=7, shuffle=True, num_workers=2)
               for s in (splits.forget, splits.retain, splits.test)]
    via_api = evaluate_unlearning(model, *loaders)
    assert via_api == {k: v for k, v in mem.items() if k != "UA_test"}


# Short settings: the comparison is of bitwise equality, not of unlearning quality.
SHORT = {"ltu": {"iterations": 3, "mia_members": "retain+forget"}, "ft": {"epochs": 1}, "l1_sparse": {"epochs": 1},
         "scrub": {"epochs": 1, "max_epochs": 1}, "retrain": {}}


@pytest.mark.parametrize("name", ["retrain", *METHOD_ORDER])  # the packaged methods (tests register others)
def test_every_method_reads_streamed_data_as_in_memory_data(digits, name):
    splits, factory, model = digits
    recipe = {"epochs": 1, "batch_size": 64}
    mem_task = splits.task(factory, recipe)
    stream_task = UnlearnTask.from_datasets(
        forget=TensorDataset(mem_task.forget.x, mem_task.forget.y),
        retain=DataLoader(TensorDataset(mem_task.retain_access.x, mem_task.retain_access.y), batch_size=3),
        heldout=streamed(mem_task.heldout, "heldout"),
        retain_full=TensorDataset(mem_task.retain_full.x, mem_task.retain_full.y), num_classes=splits.num_classes,
        model_factory=factory, train_recipe=recipe, device="cpu", progress=False)
    assert all(isinstance(s, DatasetSplit) for s in (stream_task.forget, stream_task.retain_access))
    kwargs = SHORT.get(name, {})
    a, b = unlearn(model, mem_task, name, **kwargs), unlearn(model, stream_task, name, **kwargs)
    assert a.model.state_dict().keys() == b.model.state_dict().keys()
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
    assert name in METHODS


def test_task_device_none_runs_on_the_models_device(digits):
    splits, _factory, model = digits
    task = UnlearnTask.from_datasets(TensorDataset(splits.forget.x, splits.forget.y),
                                     TensorDataset(splits.retain.x, splits.retain.y),
                                     TensorDataset(splits.heldout.x, splits.heldout.y), 10, progress=False)
    assert task.device is None and task.retain_full is None and task.retain_size == len(splits.retain)
    assert next(unlearn(model, task, "ga", epochs=1).model.parameters()).device == torch.device("cpu")
    with pytest.raises(ValueError, match="retrain: .*retain_full"):
        unlearn(model, task, "retrain")


class Items(Dataset):
    """A dataset yielding given items (sample 0 is a good one unless ``first`` says otherwise)."""

    def __init__(self, bad, at: int = 2, n: int = 4, first=None):
        self.bad, self.at, self.n, self.first = bad, at, n, first

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i == 0 and self.first is not None:
            return self.first
        return self.bad if i == self.at else (torch.zeros(1, 3, 3), 1)


@pytest.mark.parametrize(("bad", "error", "match"), [
    ({"x": 1}, TypeError, r"forget: sample 2: expected an \(input tensor, int label\) pair, got dict"),
    ((torch.zeros(1, 3, 3), 1, 2), TypeError, "sample 2: .* got tuple of length 3"),
    ((torch.zeros(1, 3, 3, dtype=torch.uint8), 1), TypeError, "sample 2: the input must be a floating-point tensor"),
    (([0.0] * 9, 1), TypeError, "sample 2: the input must be a floating-point tensor, got list"),
    ((torch.zeros(1, 3, 3), 1.0), TypeError, "sample 2: the label must be an int"),
    ((torch.zeros(1, 3, 3), torch.tensor([1, 2])), TypeError, "sample 2: the label must be an int"),
    ((torch.zeros(1, 3, 3), 10), ValueError, r"sample 2: label 10 is outside 0..9"),
    ((torch.zeros(1, 3, 3), -1), ValueError, r"sample 2: label -1 is outside"),
    ((torch.zeros(1, 4, 4), 1), ValueError, r"sample 2: input of shape \(1, 4, 4\).*sample 0 has \(1, 3, 3\)"),
])
def test_a_bad_sample_is_an_error_naming_the_split_and_the_index(bad, error, match):
    split = DatasetSplit(Items(bad), "forget", num_classes=10)
    with pytest.raises(error, match=match):
        list(split.batches(2))
    with pytest.raises(error, match=match):
        split.labels()
    if "shape" not in match:  # sample 0 is checked when the split is made (and sets the shape)
        with pytest.raises(error, match="sample 0"):
            DatasetSplit(Items(None, first=bad), "forget", num_classes=10)


def test_a_bad_dataset_is_an_error_naming_the_split():
    class Stream(IterableDataset):
        def __iter__(self):
            yield torch.zeros(2), 0

    with pytest.raises(TypeError, match="heldout: needs a map-style Dataset"):
        as_split(Stream(), "heldout")
    with pytest.raises(ValueError, match="retain: the dataset is empty"):
        as_split(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.int64)), "retain")
    with pytest.raises(TypeError, match="forget: expected a torch Dataset"):
        as_split([(torch.zeros(2), 0)], "forget")
    good = TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="inputs of different shapes across splits"):
        UnlearnTask.from_datasets(good, good, TensorDataset(torch.zeros(4, 3), torch.zeros(4, dtype=torch.int64)), 3)
    with pytest.raises(ValueError, match="num_classes"):
        UnlearnTask.from_datasets(good, good, good, 1)
    with pytest.raises(ValueError, match="label 5 is outside 0..2"):
        as_split(TensorDataset(torch.zeros(2, 2), torch.tensor([0, 5])), "forget", num_classes=3).labels()
