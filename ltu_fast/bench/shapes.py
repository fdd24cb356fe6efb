"""Parameter sizes of common networks, generated in code (no torchvision or transformers needed).

Each entry returns the element count of every parameter tensor in order: the optimizer benches need
only the layout, never the modules.
"""

from __future__ import annotations

from collections.abc import Callable


def _resnet18_cifar() -> list[int]:
    numels, cin = [64 * 3 * 9, 64, 64], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            first_in = cin if block == 0 else cout
            numels += [cout * first_in * 9, cout, cout, cout * cout * 9, cout, cout]
            if block == 0 and (stride != 1 or first_in != cout):
                numels += [cout * first_in, cout, cout]
        cin = cout
    return numels + [10 * 512, 10]


def _vit_b16() -> list[int]:
    d = 768
    numels = [d * 3 * 16 * 16, d, d, 197 * d]
    for _ in range(12):
        numels += [d, d, 3 * d * d, 3 * d, d * d, d, d, d, 4 * d * d, 4 * d, 4 * d * d, d]
    return numels + [d, d, 1000 * d, 1000]


def _gpt(d: int, layers: int, vocab: int = 50257, ctx: int = 1024) -> list[int]:
    numels = [vocab * d, ctx * d]
    for _ in range(layers):
        numels += [d, d, 3 * d * d, 3 * d, d * d, d, d, d, 4 * d * d, 4 * d, 4 * d * d, d]
    return numels + [d, d]


PARAMETER_SIZES: dict[str, Callable[[], list[int]]] = {
    "resnet18": _resnet18_cifar,
    "vit_b16": _vit_b16,
    "gpt2_small": lambda: _gpt(768, 12),
    "gpt2_medium": lambda: _gpt(1024, 24),
    "synthetic_1b": lambda: _gpt(2048, 20),
}
