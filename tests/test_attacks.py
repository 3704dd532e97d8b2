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


def test_a_broken_attack_is_stopped_by_the_bound_check():
    """eps doubled after clipping (a classic bug) leaves the budget; a step past [0, 1]
    leaves the valid range: either stops the attack, naming the violation."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 8, 8, generator=g)
    step = torch.randn(4, 1, 8, 8, generator=g).sign()
    eps = 0.05
    fine = (x + eps * step).clamp(0, 1)
    assert attacks.check_bound(fine, x, eps, "FGSM") <= eps + attacks.BOUND_TOLERANCE
    broken = (x + eps * step).clamp(0, 1) + eps * step  # doubled after clipping
    with pytest.raises(attacks.AttackBoundError, match="beyond its budget eps = 0.05"):
        attacks.check_bound(broken.clamp(0, 1), x, eps, "FGSM")
    with pytest.raises(attacks.AttackBoundError, match=r"outside the valid range \[0, 1\]"):
        attacks.check_bound(x + eps * step, x, eps, "FGSM")  # never clipped


def test_pgd_is_at_least_as_strong_as_fgsm_and_noise_far_weaker(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 100)
    epsilons = [0.0, 0.05, 0.1]
    rows = attacks.attack_checks(model, x01, y, mean, std, epsilons, steps=5,
                                 alpha_fraction=0.25, seed=0, batch_size=64)
    acc = {(r["epsilon"], r["attack"]): r["accuracy"] for r in rows}
    assert {r["attack"] for r in rows} == {"fgsm", "pgd", "noise"} and len(rows) == 9
    assert acc[(0.0, "fgsm")] == acc[(0.0, "pgd")] == acc[(0.0, "noise")] > 0.5  # chance: 0.1
    for eps in epsilons[1:]:
        assert acc[(eps, "pgd")] <= acc[(eps, "fgsm")]
        drop_fgsm, drop_noise = acc[(0.0, "fgsm")] - acc[(eps, "fgsm")], \
            acc[(0.0, "noise")] - acc[(eps, "noise")]
        assert drop_fgsm > 0 and drop_noise < 0.5 * drop_fgsm
    assert all(r["max_linf"] <= r["epsilon"] + attacks.BOUND_TOLERANCE for r in rows)
    again = attacks.attack_checks(model, x01, y, mean, std, epsilons, steps=5,
                                  alpha_fraction=0.25, seed=0, batch_size=64)
    assert again == rows  # seeded: PGD's random start and the noise


def test_targeted_checks_score_reaching_the_target_and_pgd_reaches_it_at_least_as_often(
        trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 100)
    targets = (y + 1) % 10
    targets[:5] = y[:5]  # a target equal to the true class tests nothing: not scored
    rows = attacks.attack_checks(model, x01, y, mean, std, [0.0, 0.1, 0.2], steps=5,
                                 alpha_fraction=0.25, seed=0, targets=targets, batch_size=64)
    success = {(r["epsilon"], r["attack"]): r["success"] for r in rows}
    assert {r["goal"] for r in rows} == {"targeted"} and {r["scored"] for r in rows} == {95}
    assert success[(0.0, "fgsm")] < 0.1  # a trained model rarely predicts the next digit
    assert success[(0.2, "fgsm")] > success[(0.1, "fgsm")] > success[(0.0, "fgsm")]
    for eps in (0.1, 0.2):
        assert success[(eps, "pgd")] >= success[(eps, "fgsm")]
        assert success[(eps, "noise")] < 0.5 * success[(eps, "fgsm")]
    assert all(r["max_linf"] <= r["epsilon"] + attacks.BOUND_TOLERANCE for r in rows)
