"""The mnist lab's probes on a quick-trained MNIST CNN, and its structure counts."""

from __future__ import annotations

import pytest
import torch

from cnnrepro.evaluate import layer_table
from cnnrepro.studies.mnist.claims import structure_table
from cnnrepro.studies.mnist.lab import activations, ascend, learn_noise, occlusion_maps
from cnnrepro.models import build_model
from cnnrepro.runtime import Normalized


@pytest.fixture(scope="module")
def lab(trained_mnist):
    net, splits, spec = trained_mnist
    model = Normalized(net, spec["normalize"]["mean"], spec["normalize"]["std"]).eval()
    test = splits["test"]
    return net, model, test.images.float() / 255, test.labels


@pytest.mark.parametrize("batch_norm", [False, True])
def test_structure_shares_by_hand(tmp_path, batch_norm):
    model = build_model("mnist_cnn", {"batch_norm": batch_norm}, 10, 1, 28).eval()
    layer_table(model, torch.zeros(1, 1, 28, 28)).to_csv(tmp_path / "layers.csv", index=False)
    _, shares = structure_table(tmp_path / "layers.csv")
    conv = (1 * 9 + 1) * 32 + (32 * 9 + 1) * 32
    fc = (32 * 7 * 7 + 1) * 500 + (500 + 1) * 10
    bn = (2 * 32 + 2 * 32 + 2 * 500) if batch_norm else 0  # gamma and beta per channel/unit
    assert shares["parameters"] == conv + fc + bn
    if not batch_norm:  # the lab's numbers: 799,078 parameters, FC 98.80 %
        assert round(shares["fc_param_share"], 2) == round(100 * fc / (conv + fc), 2) == 98.80
    conv_neurons, fc_neurons = 32 * 28 * 28 + 32 * 14 * 14, 500 + 10
    assert shares["neurons"] == conv_neurons + fc_neurons == 31_870
    assert round(shares["conv_neuron_share"], 2) == 98.40


def test_activations_are_the_relu_outputs_of_both_conv_layers(lab):
    net, _, x01, _ = lab
    act1, act2 = activations(net, x01[:2])
    assert act1.shape == (2, 32, 28, 28) and act2.shape == (2, 32, 14, 14)
    assert (act1 >= 0).all() and (act2 >= 0).all()
    expected = torch.relu(net.features[0](x01[:2]))
    torch.testing.assert_close(act1, expected)


def test_fooling_reaches_the_threshold_and_the_cost_rises(lab):
    _, model, x01, _ = lab
    gen = torch.Generator().manual_seed(0)
    start = 0.5 + 0.1 * torch.randn(10, 1, 28, 28, generator=gen)
    out = ascend(model, start, torch.arange(10), step=0.5, iterations=300, threshold=0.9)
    final = out["final_probs"][torch.arange(10), torch.arange(10)]
    assert (final >= 0.9).sum() >= 8, final
    assert (out["stopped"] < 300).sum() >= 8
    first, last = out["cost"][:, 0], out["cost"][torch.arange(10),
                                                  out["stopped"].clamp(max=out["cost"].shape[1] - 1)]
    assert (last - first).mean() > 0


def test_targeted_images_stay_close_and_hit_the_target(lab):
    _, model, x01, labels = lab
    sources = torch.stack([torch.nonzero(labels == c)[0, 0] for c in range(3)])
    src = x01[sources].repeat_interleave(10, 0)
    targets = torch.arange(10).repeat(3)
    out = ascend(model, src, targets, step=0.05, iterations=300, threshold=0.9, source=src,
                 beta=1e-4)
    mse = ((out["images"] - src) ** 2).flatten(1).mean(1)
    hits = (out["final_probs"].argmax(1) == targets).float().mean()
    assert hits >= 0.8, hits
    assert mse.median() < 0.05, mse  # a recognisable source: mean squared change per pixel


def test_learned_noise_steers_far_more_than_gaussian_of_the_same_norm(lab):
    _, model, x01, _ = lab
    images = x01[:10]
    gen = torch.Generator().manual_seed(1)
    hits = control_hits = 0
    for target in range(10):
        noise = learn_noise(model, images, target, step=0.5, iterations=100)
        control = torch.randn(noise.shape, generator=gen)
        control *= noise.norm() / control.norm()
        with torch.no_grad():
            hits += (model(images + noise).argmax(1) == target).sum().item()
            control_hits += (model(images + control).argmax(1) == target).sum().item()
    assert hits >= control_hits + 30, (hits, control_hits)  # of 100 image-noise pairs


def test_occlusion_over_the_border_matters_less_than_over_the_digit(lab):
    _, model, x01, labels = lab
    drop = occlusion_maps(model, x01[:10], labels[:10], patch=7, stride=2, grey=0.5)
    assert drop.shape == x01[:10].shape
    border = drop[:, 0, :4, :4].abs().mean()  # a corner: MNIST digits are centred
    centre = drop[:, 0, 10:18, 10:18].abs().mean()
    assert centre > border, (centre, border)
