"""Published training recipes by name: ``--preset NAME`` sets the recipe and the model.

``salun``: the CIFAR-10/100 ResNet-18 training of the original model in the SalUn (ICLR'24) and
l1-sparse (NeurIPS'23) code, the protocol most image-unlearning papers report against (Retrain TA
about 94% on CIFAR-10). From OPTML-Group/Unlearn-Saliency and Unlearn-Sparse: ``arg_parser.py``
defaults (182 epochs, batch 256, SGD lr 0.1, momentum 0.9, weight decay 5e-4, no warm-up, lr x0.1
at epochs 91 and 136 by ``MultiStepLR``), ``dataset.py`` (training augmentation ``RandomCrop(32,
padding=4)`` + ``RandomHorizontalFlip``, none for evaluation) and ``utils.py`` (per-channel
normalisation, :data:`~ltu_fast.unlearn.data.NORMALIZATION`). Two choices of ours: bfloat16 autocast
on CUDA (``amp``; their code trains in float32, ``--recipe amp=false`` does too) and padding the
crop with zeros of the normalised input (the mean colour) where torchvision pads black before
normalising; no gradient clipping, as theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .train import TrainRecipe

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset:
    """A training recipe, the model it trains and where both come from."""

    recipe: TrainRecipe
    model: str
    source: str


PRESETS: dict[str, Preset] = {
    "salun": Preset(
        TrainRecipe(epochs=182, batch_size=256, lr=0.1, momentum=0.9, weight_decay=5e-4, schedule="step",
                    milestones=(91, 136), warmup_epochs=0.0, clip_norm=0.0, augment=True, amp=True),
        "resnet18",
        "SalUn / l1-sparse CIFAR ResNet-18 recipe (OPTML-Group/Unlearn-Saliency, Unlearn-Sparse: arg_parser.py, "
        "dataset.py, utils.py)"),
}
