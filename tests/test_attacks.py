"""FGSM: the pixel-space attacks (untargeted and targeted) and the vdk paper protocol."""

from __future__ import annotations

import pytest
import torch
from conftest import sample_images
from torch import nn

from cnnrepro import attacks
from cnnrepro.runtime import Normalized, standardizer


def test_clean_fgsm_is_the_textbook_formula(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 64)
    eps = 0.1
    adv = attacks.fgsm_perturb(Normalized(model, mean, std).eval(), x01, y, eps)
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

    model, x01, y, mean, std = sample_images(trained_mnist, 64)
    x_norm = standardizer(mean, std, x01.device)(x01)
    ours = attacks.fgsm_paper_perturb(model, x_norm, y, mean, std, 0.16)
    direct = FGSM(model, lower_bound=0, upper_bound=1).perturb(x01, epsilon=0.16, target=y)
    assert torch.equal(ours, direct)
    scored = attacks.fgsm_paper(model, x_norm, y, mean, std, 0.16, 10, batch_size=16)
    kept = scored["clean_pred"] == y.numpy()
    assert scored["n_scored"] == kept.sum()
    assert scored["score"] == pytest.approx((scored["adv_pred"][kept] == y.numpy()[kept]).mean())


def test_targeted_fgsm_descends_the_target_cross_entropy(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 64)
    wrapped = Normalized(model, mean, std).eval()
    target = (y + 1) % 10
    adv = attacks.fgsm_perturb(wrapped, x01, target, 0.1, targeted=True)
    x = x01.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(wrapped(x), target)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.allclose(adv, (x01 - 0.1 * grad.sign()).clamp(0, 1), atol=1e-6)
    with torch.no_grad():
        before = wrapped(x01).gather(1, target[:, None])
        after = wrapped(adv).gather(1, target[:, None])
    assert (after > before).float().mean() > 0.8  # the target logit goes up on most images


@pytest.mark.parametrize("targeted", [False, True])
def test_a_sweep_from_one_gradient_equals_torchattacks_per_epsilon(trained_mnist, targeted):
    model, x01, y, mean, std = sample_images(trained_mnist, 64)
    wrapped = Normalized(model, mean, std).eval()
    labels = (y + 1) % 10 if targeted else y
    epsilons = [0.0, 1 / 255, 0.05, 0.1, 0.3]
    swept = dict(attacks.fgsm_sweep(wrapped, x01, labels, epsilons, targeted=targeted))
    assert list(swept) == epsilons
    for eps in epsilons:
        one = attacks.fgsm_perturb(wrapped, x01, labels, eps, targeted=targeted)
        assert torch.equal(swept[eps], one), eps  # the same bits, not only close
    assert torch.equal(swept[0.0], x01)
    assert not torch.equal(swept[0.1], swept[0.05])


def test_the_clean_sweep_predicts_as_per_epsilon_torchattacks_calls(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 64)
    epsilons = [0.0, 0.05, 0.2]
    result = attacks.fgsm_clean(model, x01, y, mean, std, epsilons, 10, batch_size=24)
    wrapped = Normalized(model, mean, std).eval()
    for row, eps in zip(result["curve"], epsilons):
        adv = torch.cat([attacks.fgsm_perturb(wrapped, x01[i:i + 24], y[i:i + 24], eps)
                         for i in range(0, 64, 24)])
        with torch.no_grad():
            pred = wrapped(adv).argmax(1)
        assert row["accuracy"] == (pred == y).float().mean().item()
        assert (result["confusion"][eps].sum(0) == torch.bincount(pred, minlength=10).numpy()).all()
