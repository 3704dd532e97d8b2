"""The vdk study's analyses: FGSM (both protocols), blur search (both), attribution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cnnrepro import attacks, attribution, blur
from cnnrepro.claims import FAILS, HOLDS, INCONCLUSIVE, numeric_verdict, paired_verdict
from cnnrepro.runtime import Normalized, standardizer


def data(trained, n):
    model, splits, spec = trained
    test = splits["test"]
    mean, std = spec["normalize"]["mean"], spec["normalize"]["std"]
    return model, test.images[:n].float() / 255, test.labels[:n], mean, std


def test_clean_fgsm_is_the_textbook_formula(trained_mnist):
    model, x01, y, mean, std = data(trained_mnist, 64)
    eps = 0.1
    adv = attacks.fgsm_clean_perturb(Normalized(model, mean, std).eval(), x01, y, eps)
    # independent computation: x + eps * sign(grad_x CE(model(normalise(x)), y)), clipped
    x = x01.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(model(standardizer(mean, std, x.device)(x)), y)
    (grad,) = torch.autograd.grad(loss, x)
    expected = (x01 + eps * grad.sign()).clamp(0, 1)
    assert torch.allclose(adv, expected, atol=1e-6)
    curve = attacks.fgsm_clean(model, x01, y, mean, std, [0.0, eps], 10)["curve"]
    with torch.no_grad():
        clean_acc = (model(standardizer(mean, std, x.device)(x01)).argmax(1) == y).float().mean()
    assert curve[0]["accuracy"] == pytest.approx(clean_acc.item())
    assert curve[1]["accuracy"] < curve[0]["accuracy"]


def test_paper_fgsm_equals_captum_called_as_the_original(trained_mnist):
    from captum.robust import FGSM

    model, x01, y, mean, std = data(trained_mnist, 64)
    x_norm = standardizer(mean, std, x01.device)(x01)
    ours = attacks.fgsm_paper_perturb(model, x_norm, y, mean, std, 0.16)
    direct = FGSM(model, lower_bound=0, upper_bound=1).perturb(x01, epsilon=0.16, target=y)
    assert torch.equal(ours, direct)
    scored = attacks.fgsm_paper(model, x_norm, y, mean, std, 0.16, 10, batch_size=16)
    kept = scored["clean_pred"] == y.numpy()
    assert scored["n_scored"] == kept.sum()
    assert scored["score"] == pytest.approx((scored["adv_pred"][kept] == y.numpy()[kept]).mean())


def test_batched_paper_blur_equals_the_captum_loop(trained_mnist):
    model, x01, y, mean, std = data(trained_mnist, 40)
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
    model, x01, y, mean, std = data(trained_mnist, 60)
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


def test_integrated_gradients_completeness(trained_mnist):
    model, x01, y, mean, std = data(trained_mnist, 4)
    x = standardizer(mean, std, x01.device)(x01)
    attr = attribution.attribute(model, x, y, "integrated_gradients", ig_steps=300)
    with torch.no_grad():
        gap = model(x).gather(1, y[:, None]) - model(torch.zeros_like(x)).gather(1, y[:, None])
    assert torch.allclose(attr.sum((1, 2, 3)), gap[:, 0], rtol=0.02, atol=0.05)


def test_ig_deletion_beats_random_ordering(trained_mnist):
    model, x01, y, mean, std = data(trained_mnist, 40)
    x = standardizer(mean, std, x01.device)(x01)
    ig = attribution.attribute(model, x, y, "integrated_gradients")
    del_ig, ins_ig = attribution.deletion_insertion(model, x, y, ig, steps=16)
    rand = attribution.random_attributions(x.shape, seed=0)
    del_rand, ins_rand = attribution.deletion_insertion(model, x, y, rand, steps=16)
    assert del_ig.mean() < del_rand.mean()
    assert ins_ig.mean() > ins_rand.mean()


def test_every_method_runs_on_every_vdk_architecture():
    from cnnrepro.models import build_model

    settings = {"nt_samples": 2, "nt_stdev": 0.2, "ig_steps": 4}
    for opts in ({}, {"branches": False}, {"branch_dilations": [2, 4]}):
        model = build_model("vdk_cnnet", opts, 10, 3, 32).eval()
        maps = attribution.explain(model, torch.randn(2, 3, 32, 32), torch.tensor([1, 2]),
                                   settings, seed=0)
        assert set(maps) == set(attribution.METHODS)
        assert all(m.shape == (2, 3, 32, 32) and torch.isfinite(m).all() for m in maps.values())


def test_verdict_rules():
    assert numeric_verdict(72.59, [72.0, 73.0, 72.5], 2.0)[0] == HOLDS
    assert numeric_verdict(72.59, [60.0, 61.0, 60.5], 2.0)[0] == FAILS
    # the mnist time ratios of a contended run: any value "within 2 std" is no evidence
    assert numeric_verdict(1.77, [7.94, 0.40, 12.89], 0.3)[0] == INCONCLUSIVE
    assert paired_verdict([70, 71, 72], [60, 61.5, 61], 0.05)[0] == HOLDS
    assert paired_verdict([60, 61.5, 61], [70, 71, 72], 0.05)[0] == FAILS
    assert paired_verdict([70], [60], 0.05)[0] == INCONCLUSIVE
    verdict, _, res = paired_verdict([0.2, 0.3, 0.1], [0.4, 0.5, 0.6], lower_is_better=True)
    assert verdict == HOLDS and res["n"] == 3 and res["p_greater"] < 0.05
