"""Small classifiers for the unlearning experiments, looked up by name.

``cnn`` (default) is sized to train MNIST-scale data in seconds on a CPU and, thanks to adaptive
pooling, accepts any image size (28×28 MNIST, 8×8 digits, 32×32 CIFAR). ``resnet18`` is the CIFAR
variant used by the SalUn / l1-sparse protocol (3×3 stem, no max-pool).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from torch import nn

__all__ = ["MLP", "MODELS", "ResNet18", "SmallCNN", "build_model", "model_factory"]


class SmallCNN(nn.Module):
    """Two conv blocks + a two-layer head; adaptive pooling fixes the head size for any input."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32 * width, 128), nn.ReLU(inplace=True),
                                  nn.Linear(128, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class MLP(nn.Module):
    """Flatten → two hidden ReLU layers; works on images and on flat feature vectors."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.net(x)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18, CIFAR stem: 3×3 conv, stride 1, no max-pool; four stages of two basic blocks."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        stages, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2 ** i
            stages += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))))


def _cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    _need_image("cnn", input_shape)
    return SmallCNN(input_shape[0], num_classes)


def _mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return MLP(math.prod(input_shape), num_classes)


def _resnet18(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    _need_image("resnet18", input_shape)
    return ResNet18(input_shape[0], num_classes)


def _need_image(name: str, input_shape: tuple[int, ...]) -> None:
    if len(input_shape) != 3:
        raise ValueError(f"--model (model): {name!r} needs images [C, H, W], got input shape {input_shape}; "
                         "use --model mlp for flat features")


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {"cnn": _cnn, "mlp": _mlp, "resnet18": _resnet18}


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A fresh model by registry name (initialised from the current torch RNG state)."""
    if name not in MODELS:
        raise ValueError(f"--model (model): unknown {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](tuple(input_shape), num_classes)


def model_factory(name: str, input_shape: tuple[int, ...], num_classes: int) -> Callable[[], nn.Module]:
    """A zero-argument constructor, what :class:`UnlearnTask.model_factory` expects."""
    build_model(name, input_shape, num_classes)  # fail early on a bad name or shape
    return partial(build_model, name, tuple(input_shape), num_classes)
