"""Gaussian-blur minimal perturbation, both protocols of the vdk study.

``paper``: the original ran Captum's ``MinParamPerturbation`` image by image over the test
set, blurring the *normalised* tensor with ``torchvision.transforms.GaussianBlur(k)`` for
k = 1, 3, …, 29, five attempts each; GaussianBlur draws a new sigma ~ U(0.1, 2.0) on every
call, and the answer is the first k whose blurred image is misclassified (target = true
label). :func:`min_blur_paper` does the same search batched over all images — one forward
pass per (kernel size, attempt) over the images still unresolved — with the sigma draws
given as a table, so that :func:`min_blur_captum` (the one-image Captum loop) returns the
same answers for the same draws.

``clean``: a deterministic blur in pixel space (before normalisation) over a fixed sigma
grid, applied only to the images classified correctly before blurring.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .names import IMMUNE

SIGMA_RANGE = (0.1, 2.0)  # torchvision.transforms.GaussianBlur's default sigma range


def search_batch_size(device: torch.device) -> int:
    """Images per forward pass of the blur searches. On 2 CPU cores VDK CNNet's forward
    costs 0.68 ms/image in batches of 100 but 0.87 ms in batches of 1,000 (cache), and a
    1,000-image paper search (benchmarks/blur_search.py) took 23 s vs 28 s; a GPU wants
    the large batch."""
    return 1000 if device.type == "cuda" else 100


def paper_kernel_sizes(arg_min: int = 1, arg_max: int = 31, arg_step: int = 2) -> list[int]:
    """The kernel sizes Captum's linear search visits (``arg_max`` excluded)."""
    return list(range(arg_min, arg_max, arg_step))


def draw_sigmas(n_images: int, n_kernels: int, attempts: int, seed: int) -> torch.Tensor:
    """Sigma table [kernel, attempt, image] ~ U(0.1, 2.0), as GaussianBlur draws them."""
    generator = torch.Generator().manual_seed(seed)
    low, high = SIGMA_RANGE
    return low + (high - low) * torch.rand(n_kernels, attempts, n_images, generator=generator)


def blur_per_image(images: torch.Tensor, kernel_size: int, sigmas: torch.Tensor) -> torch.Tensor:
    """Gaussian blur with one sigma per image, as torchvision's ``gaussian_blur`` computes it
    (same kernel formula, reflect padding), for a whole batch at once.

    Hand-written because torchvision applies one sigma to a whole batch; the paper protocol
    needs a fresh sigma per image in each batched pass.
    """
    n, c, h, w = images.shape
    half = (kernel_size - 1) * 0.5
    x = torch.linspace(-half, half, steps=kernel_size, dtype=images.dtype, device=images.device)
    pdf = torch.exp(-0.5 * (x[None, :] / sigmas.to(images)[:, None]).pow(2))
    k1 = pdf / pdf.sum(1, keepdim=True)
    k2 = k1[:, :, None] * k1[:, None, :]                        # [n, k, k]
    weight = k2[:, None].expand(n, c, kernel_size, kernel_size).reshape(n * c, 1, kernel_size,
                                                                       kernel_size)
    pad = kernel_size // 2
    padded = F.pad(images.reshape(1, n * c, h, w), [pad, pad, pad, pad], mode="reflect")
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


@torch.no_grad()
def min_blur_paper(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   sigmas: torch.Tensor, kernel_sizes: list[int], batch_size: int | None = None
                   ) -> np.ndarray:
    """First kernel size (per image) whose blurred normalised image is misclassified.

    ``images`` are normalised (the original blurred the normalised tensor); ``sigmas`` is
    [len(kernel_sizes), attempts, N]. Returns kernel sizes, ``IMMUNE`` (0) where none.
    """
    model.eval()
    batch_size = batch_size or search_batch_size(images.device)
    result = torch.full((len(labels),), IMMUNE, dtype=torch.long)
    unresolved = torch.arange(len(labels))
    for ki, k in enumerate(kernel_sizes):
        for attempt in range(sigmas.shape[1]):
            if len(unresolved) == 0:
                return result.numpy()
            flipped = []
            for start in range(0, len(unresolved), batch_size):
                idx = unresolved[start:start + batch_size]
                blurred = blur_per_image(images[idx.to(images.device)], k,
                                         sigmas[ki, attempt, idx])
                pred = model(blurred).argmax(1).cpu()
                flipped.append(idx[pred != labels[idx.to(labels.device)].cpu()])
            done = torch.cat(flipped)
            result[done] = k
            unresolved = unresolved[~torch.isin(unresolved, done)]
    return result.numpy()


def min_blur_captum(model: nn.Module, image: torch.Tensor, label: int, sigmas: torch.Tensor,
                    kernel_sizes: list[int]) -> int:
    """The original's one-image loop: Captum ``MinParamPerturbation`` with a GaussianBlur
    attack whose sigma draws come from ``sigmas`` [kernel, attempt] instead of the RNG."""
    from captum.robust import MinParamPerturbation
    from torchvision.transforms.functional import gaussian_blur

    draws = iter(sigmas.reshape(-1).tolist())

    def attack(inp: torch.Tensor, kernel_size: int) -> torch.Tensor:
        sigma = next(draws)
        return gaussian_blur(inp, [kernel_size, kernel_size], [sigma, sigma])

    step = kernel_sizes[1] - kernel_sizes[0] if len(kernel_sizes) > 1 else 2
    search = MinParamPerturbation(forward_func=model, attack=attack, arg_name="kernel_size",
                                  mode="linear", arg_min=kernel_sizes[0],
                                  arg_max=kernel_sizes[-1] + step, arg_step=step,
                                  num_attempts=sigmas.shape[1])
    with torch.no_grad():
        _, found = search.evaluate(image[None], target=torch.tensor([label]))
    return IMMUNE if found is None else int(found)


def kernel_for_sigma(sigma: float, truncate: float = 3.0) -> int:
    """Odd kernel size covering ±truncate·sigma."""
    return 2 * math.ceil(truncate * sigma) + 1


@torch.no_grad()
def clean_blur_flips(model: nn.Module, images01: torch.Tensor, labels: torch.Tensor,
                     normalize: Callable[[torch.Tensor], torch.Tensor],
                     sigma_grid: list[float], batch_size: int | None = None) -> np.ndarray:
    """Whether the pixel-space blur at each sigma of the grid (ascending) flips each image's
    prediction: [sigma, image]. Every image at every sigma, not only until its first flip:
    the share flipped per sigma is the blur's damage, which must not fall as sigma grows
    (the sanity check; a first-flip count rises by construction). ``images01`` are in
    [0, 1]; call it only with images the model classifies correctly."""
    model.eval()
    batch_size = batch_size or search_batch_size(images01.device)
    flips = np.zeros((len(sigma_grid), len(labels)), dtype=bool)
    for row, sigma in enumerate(sorted(sigma_grid)):
        k = min(kernel_for_sigma(sigma), 2 * (min(images01.shape[-2:]) // 2) - 1)
        for start in range(0, len(labels), batch_size):
            batch = images01[start:start + batch_size]
            blurred = blur_per_image(batch, k, torch.full((len(batch),), float(sigma)))
            pred = model(normalize(blurred)).argmax(1).cpu()
            flips[row, start:start + len(batch)] = (
                pred != labels[start:start + batch_size].cpu()).numpy()
    return flips


def first_flip(flips: np.ndarray, sigma_grid: list[float]) -> np.ndarray:
    """Smallest sigma of the grid whose blur flips each image (:func:`clean_blur_flips`'
    table); ``nan`` for immune images."""
    grid = np.sort(np.asarray(sigma_grid, float))
    hit = flips.any(0)
    return np.where(hit, grid[flips.argmax(0)], np.nan)
