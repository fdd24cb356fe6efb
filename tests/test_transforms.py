"""The torch transforms (normalisation, crop with padding + flip) and the recipe fields that use them
(augment, amp, step milestones)."""

import math

import pytest
import torch

from ltu_fast.unlearn.splits import ArraySplit
from ltu_fast.unlearn.train import TrainRecipe, train_model
from ltu_fast.unlearn.transforms import Normalize, crop_flip, random_crop_flip


def test_normalize_by_hand_in_float64():
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 4.0)
    got = Normalize(mean, std)(x)
    for c in range(3):
        assert torch.allclose(got[:, c], (x[:, c] - mean[c]) / std[c], rtol=0, atol=1e-15)
    assert torch.equal(Normalize(mean, std)(x[0]), got[0])  # one image [C, H, W]
    with pytest.raises(ValueError, match="3 channel statistics for an input of shape"):
        Normalize(mean, std)(torch.rand(1, 2, 4, 4))
    with pytest.raises(ValueError, match="std must be > 0"):
        Normalize((0.0,), (0.0,))


def _reference(x, offsets, flip, padding):
    """torchvision's order on one image at a time: zero-pad, crop at the offsets, then mirror."""
    h, w = x.shape[-2:]
    out = []
    for img, (r, c), f in zip(x, offsets.tolist(), flip.tolist()):
        crop = torch.nn.functional.pad(img, (padding,) * 4)[:, r:r + h, c:c + w]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out)


def test_crop_flip_equals_per_image_pad_crop_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 7, 5, generator=g, dtype=torch.float64)
    offsets = torch.randint(0, 9, (16, 2), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    assert torch.equal(crop_flip(x, offsets, flip, 4), _reference(x, offsets, flip, 4))
    centre = torch.full((16, 2), 4)
    assert torch.equal(crop_flip(x, centre, torch.zeros(16, dtype=torch.bool)), x)  # no shift, no flip: identity
    assert torch.equal(crop_flip(x, centre, torch.ones(16, dtype=torch.bool)), x.flip(-1))


def test_crop_flip_by_hand():
    x = torch.arange(1.0, 7.0).view(1, 1, 2, 3)  # [[1, 2, 3], [4, 5, 6]]
    got = crop_flip(x, torch.tensor([[1, 2]]), torch.tensor([False]), padding=1)  # down-left of the padded image
    assert got.view(2, 3).tolist() == [[2.0, 3.0, 0.0], [5.0, 6.0, 0.0]]
    got = crop_flip(x, torch.tensor([[0, 0]]), torch.tensor([True]), padding=1)
    assert got.view(2, 3).tolist() == [[0.0, 0.0, 0.0], [2.0, 1.0, 0.0]]


def test_random_crop_flip_draws_uniform_offsets_and_fair_flips():
    x = torch.zeros(4000, 1, 2, 2)
    x[:, :, 0, 0] = 1.0  # a marker: where it lands tells the draw
    out = random_crop_flip(x, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    kept = out.flatten(1).sum(1)  # the marker (at row 4, column 4 of the padded image) survives the crop
    assert abs(kept.mean().item() - 4 / 81) < 0.015  # when both offsets are 3 or 4: (2/9)^2
    g = torch.Generator().manual_seed(1)  # the draws: offsets uniform in 0..8, then a fair flip per image
    offsets, flip = torch.randint(0, 9, (4000, 2), generator=g), torch.rand(4000, generator=g) < 0.5
    assert torch.equal(out, crop_flip(x, offsets, flip))
    assert abs(flip.float().mean().item() - 0.5) < 0.03
    assert (torch.bincount(offsets.flatten(), minlength=9).float() / 8000 - 1 / 9).abs().max() < 0.02
    with pytest.raises(ValueError, match=r"needs image batches \[N, C, H, W\]"):
        random_crop_flip(torch.zeros(3, 4), torch.Generator())


def test_recipe_milestones_are_epochs_of_a_step_schedule():
    recipe = TrainRecipe(epochs=182, schedule="step", milestones=[91, 136], warmup_epochs=0)
    assert recipe.milestones == (91, 136)
    per_epoch = 10
    factors = [recipe.lr_factor(e * per_epoch, 182 * per_epoch, 0, per_epoch) for e in (0, 90, 91, 135, 136, 181)]
    assert factors == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.01), pytest.approx(0.01)]
    assert TrainRecipe(epochs=8, schedule="step").lr_factor(3, 8) == 1.0  # without milestones: 1/2 and 3/4
    for bad in ({"milestones": (5,)}, {"milestones": (3, 2), "schedule": "step"}, {"milestones": (9,), "schedule": "step"},
                {"augment": "yes"}):
        with pytest.raises((ValueError, TypeError), match="recipe"):
            TrainRecipe(epochs=8, **bad)


def _images(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 6, 6, generator=g)
    return ArraySplit(x, (x[:, 0, 2:4, 2:4].mean((1, 2)) > 0).long())


def _trained(recipe, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))
    return train_model(model, _images(), recipe, seed, progress=False)


def test_training_with_augmentation_is_seeded_and_differs_from_without():
    plain = TrainRecipe(epochs=2, batch_size=16)
    augmented = TrainRecipe(epochs=2, batch_size=16, augment=True)
    a, b, c = _trained(augmented), _trained(augmented), _trained(plain)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))
    # amp is bfloat16 autocast on CUDA only: on the CPU the training is the plain one, bitwise
    d = _trained(TrainRecipe(epochs=2, batch_size=16, amp=True))
    assert all(torch.equal(p, q) for p, q in zip(c.parameters(), d.parameters()))
    assert math.isfinite(sum(p.sum().item() for p in a.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_amp_training_on_cuda_runs_in_bfloat16_and_learns():
    data = _images(256)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 2))
    train_model(model, data, TrainRecipe(epochs=20, batch_size=32, amp=True, augment=True), 0, "cuda", progress=False)
    acc = (model(data.x.cuda()).argmax(1).cpu() == data.y).float().mean().item()
    assert acc > 0.8
