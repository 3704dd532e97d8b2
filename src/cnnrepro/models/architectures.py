"""Every architecture of the five studies, and :data:`ARCHITECTURES`, the registry that
maps the config's ``arch`` names to their builders.

Models take normalised float input (N, C, H, W) and return logits. They are Captum-safe:
each ReLU is its own module (DeepLift and guided backprop hook modules, and a module used
twice would mix two layers' hooks) and nothing runs in place (hooks need the unmodified
input). A builder's keyword-only arguments are the config's ``options`` for that model;
:mod:`cnnrepro.models` checks them against the builder's annotations.
"""

from __future__ import annotations

import copy
import logging
import types
import warnings
from typing import Any, Callable, Literal

import torch
from torch import nn

log = logging.getLogger(__name__)
# VDK CNNet's 8x8 'same' convolutions pad asymmetrically, as the original's did; torch's
# note that this costs a padded copy is a performance remark, not a problem.
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")


class ModelError(ValueError):
    """A model spec names an unknown architecture or option."""


def _pool(kind: str, size: int) -> nn.Module:
    if kind == "avg":
        return nn.AvgPool2d(size)
    if kind == "max":
        return nn.MaxPool2d(size)
    raise ModelError(f"pool must be 'avg' or 'max', not {kind!r}")


class VDKCNNet(nn.Module):
    """VDK CNNet as the original notebook builds it (``ShifatHossain/VDK_CNNet``).

    Main path: conv ``k``×``k`` 'same' → ReLU → max-pool 2. VDK branch 1 sees the input
    pooled once, branch 2 pooled twice; each branch's conv output is concatenated to the
    main path before a 3×3 fusion conv. ``vdk_pool='avg'`` and ``vdk_kernel=8`` are the
    code's choices (the paper's text says max-pool and 3×3). ``branches=False`` is the
    no-VDK ablation. ``branch_dilations`` replaces the pooled branches by dilated 3×3
    convolutions on the full-resolution image (dilation d = a low-density (2d+1)×(2d+1)
    kernel), pooled afterwards to the branch's resolution: the dilated ablation.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, *,
                 width: int = 64, main_kernel: int = 8, vdk_kernel: int = 8,
                 vdk_pool: Literal["avg", "max"] = "avg", fusion_kernel: int = 3,
                 branches: bool = True,
                 branch_dilations: list[int] | None = None,
                 hidden: tuple[int, ...] | list[int] = (1024, 128)):
        super().__init__()
        self.branches = branches
        self.dilated = branch_dilations is not None
        if self.dilated and (not branches or len(branch_dilations) != 2):
            raise ModelError("branch_dilations needs branches=true and exactly 2 dilations")
        self.conv_main = nn.Conv2d(in_channels, width, main_kernel, padding="same")
        self.relu_main = nn.ReLU()
        self.pool_main = nn.MaxPool2d(2)
        if branches and not self.dilated:
            self.down1 = _pool(vdk_pool, 2)
            self.down2 = _pool(vdk_pool, 2)
            self.conv_vdk1 = nn.Conv2d(in_channels, width, vdk_kernel, padding="same")
            self.conv_vdk2 = nn.Conv2d(in_channels, width, vdk_kernel, padding="same")
        elif self.dilated:
            d1, d2 = branch_dilations
            self.conv_vdk1 = nn.Conv2d(in_channels, width, 3, padding=d1, dilation=d1)
            self.conv_vdk2 = nn.Conv2d(in_channels, width, 3, padding=d2, dilation=d2)
            self.down1 = nn.MaxPool2d(2)
            self.down2 = nn.MaxPool2d(4)
        if branches:
            self.relu_vdk1 = nn.ReLU()
            self.relu_vdk2 = nn.ReLU()
        fused_in = 2 * width if branches else width
        self.conv_fuse1 = nn.Conv2d(fused_in, width, fusion_kernel, padding="same")
        self.relu_fuse1 = nn.ReLU()
        self.pool_fuse1 = nn.MaxPool2d(2)
        self.conv_fuse2 = nn.Conv2d(fused_in, width, fusion_kernel, padding="same")
        self.relu_fuse2 = nn.ReLU()
        self.flatten = nn.Flatten()
        self.classifier = _mlp(width * (image_size // 4) ** 2, list(hidden), num_classes)

    def _branch(self, x: torch.Tensor, level: int) -> torch.Tensor:
        conv = self.conv_vdk1 if level == 1 else self.conv_vdk2
        relu = self.relu_vdk1 if level == 1 else self.relu_vdk2
        down = self.down1 if level == 1 else self.down2
        if self.dilated:  # dilated kernel at full resolution, then down to the branch's size
            return down(relu(conv(x)))
        return relu(conv(x))  # x is already pooled for the pooled VDK branches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool_main(self.relu_main(self.conv_main(x)))
        if self.branches:
            x1 = x if self.dilated else self.down1(x)
            h = torch.cat([h, self._branch(x1, 1)], dim=1)
        h = self.pool_fuse1(self.relu_fuse1(self.conv_fuse1(h)))
        if self.branches:
            x2 = x if self.dilated else self.down2(x1)
            h = torch.cat([h, self._branch(x2, 2)], dim=1)
        h = self.relu_fuse2(self.conv_fuse2(h))
        return self.classifier(self.flatten(h))


def _mlp(in_features: int, hidden: list[int], num_classes: int,
         batch_norm: bool = False) -> nn.Sequential:
    """Linear → [BatchNorm] → ReLU per hidden width, then the logits layer."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_features, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.ReLU())
        in_features = width
    layers.append(nn.Linear(in_features, num_classes))
    return nn.Sequential(*layers)


def conv_stack(in_channels: int, channels: list[int], kernel: int | list[int],
               padding: int | str, pool: int | None, batch_norm: bool = False,
               pool_stride: int | None = None) -> tuple[nn.Sequential, int]:
    """Conv → [BatchNorm] → ReLU → [MaxPool] blocks; returns (stack, out channels).
    ``kernel``: one size for every conv, or one per conv."""
    kernels = [kernel] * len(channels) if isinstance(kernel, int) else list(kernel)
    if len(kernels) != len(channels):
        raise ValueError(f"{len(kernels)} kernel sizes {kernels} for {len(channels)} conv "
                         f"layers {list(channels)}: give one size, or one per layer")
    layers: list[nn.Module] = []
    for out, size in zip(channels, kernels):
        layers.append(nn.Conv2d(in_channels, out, size, padding=padding))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU())
        if pool:
            layers.append(nn.MaxPool2d(pool, stride=pool_stride or pool))
        in_channels = out
    return nn.Sequential(*layers), in_channels


class ConvClassifier(nn.Module):
    """``features`` (conv stack) → flatten → ``classifier`` (MLP): most study models."""

    def __init__(self, features: nn.Module, classifier: nn.Module):
        super().__init__()
        self.features = features
        self.flatten = nn.Flatten()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.features(x)))


def _flat_size(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Features per image, from shapes alone: a copy on the meta device computes nothing
    (a real forward of 64x64 kernels at 224 px would cost 141 GMAC)."""
    probe = copy.deepcopy(features).to("meta").eval()
    return probe(torch.zeros(1, in_channels, image_size, image_size, device="meta")).numel()


def _conv_classifier(num_classes: int, in_channels: int, image_size: int, channels: list[int],
                     kernel: int, padding: int | str, pool: int | None, hidden: list[int],
                     batch_norm: bool = False, pool_stride: int | None = None) -> ConvClassifier:
    features, _ = conv_stack(in_channels, channels, kernel, padding, pool, batch_norm,
                             pool_stride)
    flat = _flat_size(features, in_channels, image_size)
    return ConvClassifier(features, _mlp(flat, hidden, num_classes, batch_norm))


def vdk_cnnet(num_classes: int, in_channels: int, image_size: int, **options: Any) -> nn.Module:
    return VDKCNNet(num_classes, in_channels, image_size, **options)


def baseline_cnn(num_classes: int, in_channels: int, image_size: int, *,
                 channels: list[int] = (6, 16), kernel: int = 5,
                 hidden: list[int] = (120, 84)) -> nn.Module:
    """The VDK paper's Baseline CNN, inferred: the PyTorch/Captum CIFAR-10 tutorial net."""
    return _conv_classifier(num_classes, in_channels, image_size, list(channels), kernel, 0, 2,
                            list(hidden))


def mnist_cnn(num_classes: int, in_channels: int, image_size: int, *,
              channels: list[int] = (32, 32), kernel: int = 3, hidden: list[int] = (500,),
              batch_norm: bool = False) -> nn.Module:
    """The MNIST lab CNN; ``batch_norm`` adds BatchNorm to the 3 hidden layers."""
    return _conv_classifier(num_classes, in_channels, image_size, list(channels), kernel,
                            kernel // 2, 2, list(hidden), batch_norm)


def lenet_cnn(num_classes: int, in_channels: int, image_size: int, *,
              channels: list[int] = (32, 64), kernel: int = 5,
              hidden: list[int] = ()) -> nn.Module:
    """The lenet study's CNN: two 'same' conv blocks and one Linear (no hidden FC)."""
    return _conv_classifier(num_classes, in_channels, image_size, list(channels), kernel,
                            kernel // 2, 2, list(hidden))


def ffnn(num_classes: int, in_channels: int, image_size: int, *,
         hidden: list[int] = (100,)) -> nn.Module:
    """Feed-forward net on the flattened image."""
    return ConvClassifier(nn.Identity(), _mlp(in_channels * image_size ** 2, list(hidden),
                                               num_classes))


def caltech_cnn(num_classes: int, in_channels: int, image_size: int, *,
                channels: list[int] = (32, 64), kernel: int | list[int] = 3, pool: int = 2,
                pool_stride: int = 2, hidden: list[int] = (128,)) -> nn.Module:
    """The Caltech study's CNN: two valid 3×3 convs, one max-pool, FC 128, FC 3
    (``kernel: [32, 64]`` is the literal reading of the document's filter sizes).

    Initialised as its text says: Kaiming-normal conv filters, FC weights from
    N(0, 1/fan_in).
    """
    features, _ = conv_stack(in_channels, list(channels), kernel, 0, None)
    features.append(nn.MaxPool2d(pool, stride=pool_stride))
    model = ConvClassifier(features, _mlp(_flat_size(features, in_channels, image_size),
                                          list(hidden), num_classes))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=module.in_features ** -0.5)
            nn.init.zeros_(module.bias)
    return model


def vgg19_transfer(num_classes: int, in_channels: int, image_size: int, *,
                   weights: Literal["IMAGENET1K_V1"] | None = "IMAGENET1K_V1",
                   fallback: Literal["random", "error"] = "random",
                   train_features: bool = False) -> nn.Module:
    """VGG19 with a new last layer; everything else frozen unless ``train_features``.

    ImageNet weights come through torchvision's own hash-checked loader (which reads its
    cache folder first, so a mirror can provide the file). When they cannot be had and
    ``fallback='random'``, the backbone keeps its random initialisation (still frozen: the
    study then measures a random-feature baseline) and a warning says so; the training
    metadata records which one was used through ``model.weights_used``. The fallback's new
    last layer is :func:`standardized_head`: on a random backbone a plain Linear stays at
    chance (``cnnrepro.studies.caltech.vgg_fallback`` measures why).
    """
    from torchvision.models import VGG19_Weights, vgg19
    try:
        model = vgg19(weights=VGG19_Weights[weights] if weights else None)
        used = weights or "none: random initialisation"
    except (OSError, RuntimeError, ValueError) as err:  # URLError is an OSError
        if fallback != "random":
            raise ModelError(f"VGG19 {weights} weights unavailable ({err}) and fallback is "
                             f"{fallback!r}") from err
        message = (f"VGG19 {weights} weights could not be loaded ({type(err).__name__}: "
                   f"{err}); using the config's fallback: a randomly initialised backbone. "
                   f"Every VGG artifact is labelled as made with the fallback.")
        warnings.warn(message)
        log.warning(message)
        model = vgg19(weights=None)
        used = FALLBACK_USED
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False  # torchvision's VGG uses in-place ReLUs
    if image_size // 32 == 7:
        # The features are already 7x7, where AdaptiveAvgPool2d((7, 7)) is the identity
        # (the same numbers); its CUDA backward has no deterministic kernel and would stop
        # every gradient through the model (trained features, Grad-CAM) on a GPU.
        model.avgpool = nn.Identity()
    for param in model.parameters():
        param.requires_grad = train_features
    last = model.classifier[-1]
    model.classifier[-1] = (standardized_head(last.in_features, num_classes)
                            if used == FALLBACK_USED else nn.Linear(last.in_features, num_classes))
    model.weights_used = used
    if not train_features:
        model.frozen_split = types.MethodType(_vgg_frozen_split, model)
    return model


def _vgg_frozen_split(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The frozen VGG19's stem (convolutions, pooling and the first, frozen FC layer: no
    dropout, no batch norm, the same in train and eval mode) and the rest, its head."""
    stem = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), model.classifier[0])
    return stem, model.classifier[1:]


def frozen_split(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(stem, head)`` with ``model(x) == head(stem(x))`` where the stem has no trainable
    parameter and no randomness, so its output on an image never changes in training (the
    trainer computes it once); None for a model that trains end to end."""
    split = getattr(model, "frozen_split", None)
    return split() if split is not None else None


FALLBACK_USED = "fallback: random backbone, standardised head"


def standardized_head(in_features: int, num_classes: int) -> nn.Sequential:
    """``BatchNorm1d(affine=False)`` then a Linear: the head's input standardised with
    running statistics of training batches only. A random VGG19's fc7 output is a small
    common offset with a between-image spread several times below the dropout noise; SGD at
    the study's lr barely moves a plain Linear on it, while on the standardised input it
    learns (training batches must hold at least 2 images)."""
    return nn.Sequential(nn.BatchNorm1d(in_features, affine=False),
                         nn.Linear(in_features, num_classes))


class GAPCNN(nn.Module):
    """``features`` (conv blocks ending with the last block's ReLU) → global average pool →
    ``classifier``. The pool is a mean over height and width: ``AdaptiveAvgPool2d``'s CUDA
    backward has no deterministic implementation (Grad-CAM and training run it)."""

    def __init__(self, features: nn.Sequential, channels: int, num_classes: int):
        super().__init__()
        self.features = features
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def gap_cnn(num_classes: int, in_channels: int, image_size: int, *,
            channels: list[int] = (32, 64, 128), kernel: int = 3, pool: int | None = 2,
            batch_norm: bool = False) -> nn.Module:
    """The concepts study's CAM model: 'same' conv blocks (max-pool ``pool`` after every
    block but the last; null keeps the full resolution), global average pooling and one
    Linear classifier (no hidden FC layer), so that the classifier's weights weight the
    last block's feature maps (CAM, Zhou et al. 2016)."""
    channels = list(channels)
    if not channels:
        raise ModelError("gap_cnn needs at least one conv block (channels is empty)")
    if pool and image_size // pool ** (len(channels) - 1) < 1:
        raise ModelError(f"gap_cnn: {len(channels) - 1} max-pools of {pool} leave nothing of "
                         f"a {image_size}-pixel image")
    features, c = conv_stack(in_channels, channels[:-1], kernel, kernel // 2, pool, batch_norm)
    last, c = conv_stack(c, channels[-1:], kernel, kernel // 2, None, batch_norm)
    return GAPCNN(nn.Sequential(*features, *last), c, num_classes)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "vdk_cnnet": vdk_cnnet,
    "baseline_cnn": baseline_cnn,
    "mnist_cnn": mnist_cnn,
    "lenet_cnn": lenet_cnn,
    "ffnn": ffnn,
    "caltech_cnn": caltech_cnn,
    "vgg19_transfer": vgg19_transfer,
    "gap_cnn": gap_cnn,
}
