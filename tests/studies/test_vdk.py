"""The vdk study's blur search (both protocols) and its stages' helpers."""

from __future__ import annotations

import numpy as np
import torch

from cnnrepro.runtime import standardizer
from cnnrepro.studies.vdk import blur
from conftest import sample_images


def test_batched_paper_blur_equals_the_captum_loop(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 40)
    x_norm = standardizer(mean, std, x01.device)(x01)
    kernels = blur.paper_kernel_sizes(1, 31, 2)
    sigmas = blur.draw_sigmas(len(y), len(kernels), 5, seed=3)
    batched = blur.min_blur_paper(model, x_norm, y, sigmas, kernels, batch_size=16)
    one_by_one = [blur.min_blur_captum(model, x_norm[i], int(y[i]), sigmas[:, :, i], kernels)
                  for i in range(len(y))]
    assert batched.tolist() == one_by_one
    assert len(set(one_by_one)) > 2  # the comparison is not vacuous


def test_per_image_blur_matches_torchvision():
    from torchvision.transforms.functional import gaussian_blur

    images = torch.rand(3, 3, 32, 32)
    sigmas = torch.tensor([0.3, 1.1, 1.9])
    ours = blur.blur_per_image(images, 7, sigmas)
    for i, s in enumerate(sigmas.tolist()):
        assert torch.allclose(ours[i], gaussian_blur(images[i], [7, 7], [s, s]), atol=1e-6)


def test_clean_blur_equals_brute_force(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 60)
    standardize = standardizer(mean, std, x01.device)
    with torch.no_grad():
        correct = model(standardize(x01)).argmax(1) == y
    x01, y = x01[correct], y[correct]
    grid = [0.5, 1.0, 1.5, 2.0, 3.0]
    found = blur.min_blur_clean(model, x01, y, standardize, grid, batch_size=7)
    brute = np.full(len(y), np.nan)
    with torch.no_grad():
        for i in range(len(y)):
            for sigma in grid:
                k = blur.kernel_for_sigma(sigma)
                img = blur.blur_per_image(x01[i:i + 1], k, torch.tensor([sigma]))
                if model(standardize(img)).argmax(1).item() != y[i].item():
                    brute[i] = sigma
                    break
    np.testing.assert_array_equal(found, brute)
