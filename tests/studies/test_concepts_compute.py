"""The concepts study's compute: convolution types vs their formulas, CAM and Grad-CAM,
hierarchical features, FGSM and targeted FGSM. Tiny tensors, CPU, seconds."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnrepro.conv_arithmetic import dilated_kernel_size, output_size, transposed_output_size
from cnnrepro.models import build_model, gap_cnn
from cnnrepro.runtime import Normalized, seed_everything
from cnnrepro.studies.concepts import cam, convtypes, fgsm_examples

TINY_GRID = {
    "c_in": 3, "c_out": [4, 8], "kernel": [1, 3, 5], "stride": [1, 2],
    "padding": ["same", 0], "dilation": [1, 2, 3], "input_size": 8,
    "transposed": {"kernel": [2, 3], "stride": [1, 2], "padding": [0, 1],
                   "output_padding": [0, 1], "input_size": 4},
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one intra-op thread is faster, and steadier on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_convtypes(one_thread):
    return convtypes.measure_convtypes(TINY_GRID, repeats=1, warmup=0, seed=0)


# ---------------------------------------------------------------- convtypes ---------

def test_every_formula_row_matches_on_a_small_grid(tiny_convtypes):
    checks = tiny_convtypes["checks"]
    assert list(checks.columns[:3]) == ["layer", "configuration", "quantity"]
    assert {"formula", "measured", "match"} <= set(checks.columns)
    bad = checks[~checks["match"]]
    assert bad.empty, bad.to_string()
    assert set(checks["layer"]) == set(convtypes.LAYERS)
    quantities = set(checks["quantity"])
    assert {"weights (no bias)", "parameters (with bias)", "MACs", "output size (H' = W')",
            "receptive field", "output channels", "output size, slides' formula"} <= quantities
    # each layer type is checked for parameters, MACs and output size in every configuration
    per_config = checks.groupby(["layer", "configuration"])["quantity"].apply(set)
    assert all({"weights (no bias)", "parameters (with bias)", "MACs",
                "output size (H' = W')"} <= q for q in per_config)
    # the slides' transposed formula is checked wherever it applies (output_padding 0)
    slide = checks[checks["quantity"] == "output size, slides' formula"]
    assert len(slide) == 2 * 2 * 2 * 2  # C_out × K × S × P
    assert not slide["configuration"].str.contains("output_padding=1").any()


def test_dilated_receptive_field_is_measured_not_assumed(tiny_convtypes):
    checks = tiny_convtypes["checks"]
    rf = checks[checks["quantity"] == "receptive field"]
    got = {(cfg.split(" K=")[1].split()[0], cfg.split(" d=")[1].split()[0]): m
           for cfg, m in zip(rf["configuration"], rf["measured"])}
    assert got[("3", "1")] == 3 and got[("3", "2")] == 5 and got[("3", "3")] == 7
    assert got[("5", "3")] == 13
    # the measurement itself, on a single conv with a dilation of 2
    layer = nn.Conv2d(2, 1, 3, dilation=2)
    assert convtypes.measured_receptive_field(layer, 2, 15) == 5


def test_hand_computed_standard_conv():
    # C_in=3, C_out=8, K=3, 8×8 input, pad 1: 3·8·9 = 216 weights + 8 biases; 216·64 MACs
    layer = convtypes.build_layer("standard", 3, 8, 3, 1, 1)
    m = convtypes.measure_layer(layer, torch.rand(1, 3, 8, 8), repeats=1, warmup=0)
    assert m["weights"] == 216 and m["parameters"] == 224
    assert m["macs"] == 216 * 64 == 13824
    assert (m["output_channels"], m["output_height"], m["output_width"]) == (8, 8, 8)


def test_hand_computed_separable_pointwise_and_dilated():
    x = torch.rand(1, 3, 8, 8)
    sep = convtypes.measure_layer(convtypes.build_layer("depthwise-separable", 3, 8, 3, 1, 1),
                                  x, repeats=1, warmup=0)
    # depthwise 3·9 = 27 (+3 bias), pointwise 8·3 = 24 (+8 bias); MACs (27 + 24)·64
    assert (sep["weights"], sep["parameters"], sep["macs"]) == (51, 62, 3264)
    one = convtypes.measure_layer(convtypes.build_layer("pointwise 1x1", 3, 8), x,
                                  repeats=1, warmup=0)
    assert (one["weights"], one["parameters"], one["macs"]) == (24, 32, 24 * 64)
    assert (one["output_channels"], one["output_height"], one["output_width"]) == (8, 8, 8)
    dil = convtypes.measure_layer(convtypes.build_layer("dilated", 3, 8, 3, 1, 0, 2), x,
                                  repeats=1, warmup=0)
    # same 216 weights as d = 1; a 5-pixel span on 8 pixels without padding leaves 4
    assert dil["weights"] == 216 and dil["output_width"] == 4 and dil["macs"] == 216 * 16


def test_hand_computed_transposed():
    # K=3, S=2, P=1 on a 4×4 input: 3 + 3·2 − 2 = 7; output_padding 1 gives 8
    x = torch.rand(1, 3, 4, 4)
    for op, size in ((0, 7), (1, 8)):
        layer = convtypes.build_layer("transposed", 3, 8, 3, 2, 1, 1, op)
        m = convtypes.measure_layer(layer, x, repeats=1, warmup=0)
        assert m["output_width"] == m["output_height"] == size
        assert m["weights"] == 3 * 8 * 9 and m["parameters"] == 216 + 8
        assert m["macs"] == 3 * 8 * 9 * 16  # one kernel product per input element
    assert convtypes.slide_transposed_output_size(4, 3, 2, 1) == 7
    # the slides' formula is PyTorch's with d = 1, output_padding = 0
    for k, s, p, w in [(2, 2, 0, 5), (4, 2, 1, 3), (3, 1, 0, 6)]:
        assert (transposed_output_size(w, k, stride=s, padding=p)
                == convtypes.slide_transposed_output_size(w, k, s, p))


def test_formula_helpers_by_hand():
    assert output_size(32, 3, padding=1) == 32
    assert output_size(224, 3) == 222
    assert output_size(32, 3, stride=2, padding=1) == 16
    assert output_size(8, 3, dilation=3) == 2
    assert dilated_kernel_size(3, 2) == 5
    assert dilated_kernel_size(3, 4) == 9
    assert convtypes.resolve_padding("same", 7, 3) == 9
    with pytest.raises(ValueError):
        convtypes.resolve_padding("same", 4)


def test_separable_ratio_is_exact_and_latency_positive(tiny_convtypes):
    ratios = tiny_convtypes["ratios"]
    assert len(ratios) == len(ratios.drop_duplicates(["c_out", "kernel", "stride", "padding"]))
    same = ratios[(ratios["stride"] == 1) & (ratios["output_size"] == 8)]
    assert len(same) == 2 * 3  # C_out × K
    for row in same.itertuples():
        assert (Fraction(int(row.macs_separable), int(row.macs_standard))
                == Fraction(1, row.c_out) + Fraction(1, row.kernel ** 2))
    assert ratios["mac_ratio_exact"].all()
    assert np.allclose(ratios["mac_ratio"], ratios["theoretical_ratio"], rtol=0, atol=1e-15)
    assert (ratios["latency_standard_ms"] > 0).all()
    assert (ratios["latency_separable_ms"] > 0).all()
    assert (ratios["latency_ratio"] > 0).all()
    assert (tiny_convtypes["layers"]["latency_ms"] > 0).all()


def test_default_grid_is_the_documented_one():
    grid = convtypes.default_grid()
    assert grid["c_in"] == 32 and grid["c_out"] == [16, 64, 256]
    assert grid["kernel"] == [3, 5, 7] and grid["input_size"] == 32
    assert grid["dilation"] == [1, 2, 3]


# ---------------------------------------------------------------- CAM ---------------

def test_gap_cnn_structure():
    model = gap_cnn(5, 3, 16, channels=(4, 6, 8), kernel=3)
    assert isinstance(model.features[-1], nn.ReLU)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == 8
    x = torch.rand(2, 3, 16, 16)  # the classifier sees the mean of each last-block map
    assert torch.allclose(model(x), model.classifier(model.features(x).mean((2, 3))))
    assert sum(isinstance(m, nn.Linear) for m in model.modules()) == 1
    assert model(torch.rand(2, 3, 16, 16)).shape == (2, 5)
    assert model.features(torch.rand(1, 3, 16, 16)).shape == (1, 8, 4, 4)
    bn = gap_cnn(2, 1, 8, channels=[4], batch_norm=True)
    assert any(isinstance(m, nn.BatchNorm2d) for m in bn.modules())
    assert isinstance(bn.features[-1], nn.ReLU)


def test_cam_by_hand_on_a_tiny_gap_model():
    model = gap_cnn(2, 1, 4, channels=[2], kernel=1)
    with torch.no_grad():
        model.features[0].weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        model.features[0].bias.zero_()
        model.classifier.weight.copy_(torch.tensor([[2.0, 1.0], [0.0, 3.0]]))
    x = torch.tensor([[0.5, -1.0], [2.0, 0.0]]).view(1, 1, 2, 2)
    # A_0 = relu(x), A_1 = relu(-x); class 0: 2·A_0 + 1·A_1
    out = cam.class_activation_maps(model, x, 0)
    assert np.allclose(out["low_res"][0], [[1.0, 1.0], [4.0, 0.0]])
    assert out["raw"].shape == (1, 2, 2) and out["normalized"].max() == 1.0


def test_gradcam_equals_cam_up_to_a_positive_scale():
    seed_everything(0)
    model = gap_cnn(4, 3, 16, channels=(6, 8), kernel=3).eval()
    x = torch.randn(5, 3, 16, 16)
    target = torch.tensor([0, 1, 2, 3, 0])
    agreement = cam.cam_gradcam_agreement(model, x, target)
    assert len(agreement) == 5
    assert (agreement["pearson"] > 0.999).all()
    assert (agreement["scale"] > 0).all()
    assert np.allclose(agreement["scale"], agreement["expected_scale"], rtol=1e-4)
    assert agreement["expected_scale"].iloc[0] == 1 / 64  # 8×8 maps after one pool
    maps = cam.class_activation_maps(model, x, target)
    assert maps["raw"].shape == (5, 16, 16) and maps["low_res"].shape == (5, 8, 8)
    assert maps["normalized"].min() >= 0 and maps["normalized"].max() <= 1
    gc = cam.grad_cam(model, x, target, model.features, relu=False)
    assert np.allclose(gc["raw"], maps["raw"] / 64, atol=1e-5)


@pytest.mark.parametrize("arch,options,size", [
    ("vdk_cnnet", {"width": 4, "hidden": [8]}, 16),
    ("mnist_cnn", {"channels": [4, 4], "hidden": [8]}, 12),
    ("caltech_cnn", {"channels": [4, 4], "hidden": [8]}, 12),
])
def test_gradcam_and_guided_gradcam_on_study_models(arch, options, size):
    seed_everything(0)
    in_channels = 1 if arch == "mnist_cnn" else 3
    model = build_model(arch, options, 3, in_channels, size).eval()
    layer = cam.conv_layers(model)[-1][1]
    x = torch.randn(2, in_channels, size, size)
    out = cam.grad_cam(model, x, [0, 2], layer)
    assert out["raw"].shape == (2, size, size)
    assert (out["raw"] >= 0).all()  # the slides' ReLU
    assert np.isfinite(out["normalized"]).all()
    guided = cam.guided_grad_cam(model, x, 1, layer)
    assert guided.shape == (2, in_channels, size, size) and np.isfinite(guided).all()


def test_hierarchical_features():
    seed_everything(0)
    model = gap_cnn(3, 3, 8, channels=(4, 6, 8), kernel=3).eval()
    levels = cam.depth_levels(model)
    assert list(levels) == ["low", "middle", "deep"]
    assert [name for name, _ in levels.values()] == ["features.0", "features.3", "features.6"]
    two = cam.depth_levels(build_model("lenet_cnn", {"channels": [2, 3]}, 2, 3, 8))
    assert list(two) == ["low", "deep"]
    # VDK CNNet registers its branch convs first; the call order puts conv_fuse1 mid-way
    vdk = build_model("vdk_cnnet", {"width": 2, "hidden": [4]}, 2, 3, 8)
    assert [n for n, _ in cam.conv_layers(vdk)][:3] == ["conv_main", "conv_vdk1", "conv_vdk2"]
    called = [n for n, _ in cam.conv_layers(vdk, torch.zeros(1, 3, 8, 8))]
    assert called == ["conv_main", "conv_vdk1", "conv_fuse1", "conv_vdk2", "conv_fuse2"]
    assert cam.depth_levels(vdk, torch.zeros(1, 3, 8, 8))["middle"][0] == "conv_fuse1"
    picked = cam.depth_levels(model, layers={"low": "features.0", "deep": "features.6"})
    assert [n for n, _ in picked.values()] == ["features.0", "features.6"]
    with pytest.raises(ValueError):
        cam.depth_levels(model, layers={"low": "features.1"})  # a ReLU has no filters
    feats = cam.hierarchical_features(model, (3, 8, 8), channels_per_layer=2, steps=10,
                                      lr=0.1, seed=1)
    low, deep = feats["low"], feats["deep"]
    assert low["filters"].shape == (4, 3, 3, 3)
    assert low["filter_images"].shape == (4, 3, 3, 3)  # (C_out, K, K, RGB)
    assert 0 <= low["filter_images"].min() and low["filter_images"].max() <= 1
    assert feats["middle"]["filter_images"] is None
    assert deep["channels"] == [0, 7] and deep["images"].shape == (2, 3, 8, 8)
    for level in feats.values():
        assert (level["activation_end"] > level["activation_start"]).all()
    again = cam.hierarchical_features(model, (3, 8, 8), channels_per_layer=2, steps=10,
                                      lr=0.1, seed=1)
    assert np.array_equal(again["deep"]["images"], deep["images"])  # seeded
    assert all(p.grad is None for p in model.parameters())


# ---------------------------------------------------------------- FGSM --------------

MEAN, STD = [0.5], [0.25]


def _separable_data(n_per_class: int = 20, classes: int = 3, seed: int = 0):
    """1×8×8 images in [0, 1]: class k has a bright horizontal band at rows 2k..2k+1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(classes * n_per_class, 1, 8, 8, generator=g) * 0.4 + 0.1
    y = torch.arange(classes).repeat_interleave(n_per_class)
    for k in range(classes):
        x[y == k, :, 2 * k:2 * k + 2] += 0.45
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def trained_small_model():
    seed_everything(0)
    model = build_model("mnist_cnn", {"channels": [4, 4], "hidden": [16]}, 3, 1, 8)
    x, y = _separable_data()
    wrapped = Normalized(model, MEAN, STD)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        F.cross_entropy(wrapped(x), y).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert (wrapped(x).argmax(1) == y).float().mean() > 0.9
    return model


def test_untargeted_fgsm_equals_autograd(trained_small_model):
    model = trained_small_model
    x, y = _separable_data(5, seed=1)
    eps = 0.1
    wrapped = Normalized(model, MEAN, STD).eval()
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(wrapped(xg), y), xg)
    expected = (x + eps * grad.sign()).clamp(0, 1)
    out = fgsm_examples.fgsm_examples(model, x, y, MEAN, STD, eps)
    assert torch.allclose(torch.from_numpy(out["adv_image"]), expected, atol=1e-6)
    assert np.allclose(out["perturbation"], (expected - x).numpy(), atol=1e-6)
    assert np.abs(out["perturbation"]).max() <= eps + 1e-6
    assert out["clean_conf"].shape == (15,) and ((out["clean_conf"] > 0) &
                                                 (out["clean_conf"] <= 1)).all()
    with torch.no_grad():
        probs = torch.softmax(wrapped(expected), 1)
    assert np.array_equal(out["adv_pred"], probs.argmax(1).numpy())
    assert np.allclose(out["adv_conf"], probs.max(1).values.numpy())


def test_targeted_fgsm_sign_and_target_moves_up(trained_small_model):
    model = trained_small_model
    x, y = _separable_data(10, seed=2)
    eps = 0.05
    wrapped = Normalized(model, MEAN, STD).eval()
    target = (y + 1) % 3
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(wrapped(xg), target), xg)
    expected = (x - eps * grad.sign()).clamp(0, 1)  # the slides' targeted step
    out = fgsm_examples.fgsm_examples(model, x, y, MEAN, STD, eps, targeted=True)
    assert np.array_equal(out["target"], target.numpy()) and out["valid"].all()
    assert torch.allclose(torch.from_numpy(out["adv_image"]), expected, atol=1e-6)
    with torch.no_grad():
        before, after = wrapped(x), wrapped(expected)
    rows = torch.arange(len(y))
    logit_up = (after[rows, target] - before[rows, target]) > 0
    margin_up = ((after[rows, target] - after[rows, y])
                 > (before[rows, target] - before[rows, y]))
    assert logit_up.float().mean() >= 0.8
    assert margin_up.float().mean() >= 0.9
    assert (out["target_prob_adv"] > out["target_prob_clean"]).mean() >= 0.9


def test_targets_are_deterministic_and_never_the_source():
    y = torch.tensor([0, 1, 2, 2])
    assert fgsm_examples.choose_targets(y, 3).tolist() == [1, 2, 0, 0]
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 1.0, 2.0], [1.0, 0.5, 2.0], [5.0, 4.0, 0.0]])
    assert fgsm_examples.choose_targets(y, 3, "least_likely", logits).tolist() == [1, 0, 1, 2]
    with pytest.raises(ValueError):
        fgsm_examples.choose_targets(y, 3, "random")


def test_fgsm_sweep(trained_small_model):
    x, y = _separable_data(8, seed=3)
    sweep = fgsm_examples.fgsm_sweep(trained_small_model, x, y, MEAN, STD, [0.0, 0.05, 0.5],
                                     batch_size=10)
    assert list(sweep["epsilon"]) == [0.0, 0.05, 0.5] and (sweep["n"] == 24).all()
    clean_error = (Normalized(trained_small_model, MEAN, STD)(x).argmax(1) != y).float().mean()
    assert sweep["untargeted_error"].iloc[0] == pytest.approx(float(clean_error))
    assert sweep["untargeted_error"].iloc[-1] > sweep["untargeted_error"].iloc[0]
    assert sweep["targeted_success"].iloc[-1] > sweep["targeted_success"].iloc[0]
    # the one-gradient sweep gives the rates of one torchattacks call per epsilon
    for row in sweep.itertuples():
        one = fgsm_examples.fgsm_examples(trained_small_model, x, y, MEAN, STD, row.epsilon)
        assert row.untargeted_error == pytest.approx(float((one["adv_pred"] != y.numpy()).mean()))
        aim = fgsm_examples.fgsm_examples(trained_small_model, x, y, MEAN, STD, row.epsilon,
                                          targeted=True)
        hit = (aim["adv_pred"] == aim["target"])[aim["valid"]]
        assert row.targeted_success == pytest.approx(float(hit.mean()))
    ll = fgsm_examples.fgsm_sweep(trained_small_model, x, y, MEAN, STD, [0.05],
                                  target_rule="least_likely")
    assert ll["n_targeted"].iloc[0] <= 24 and 0 <= ll["targeted_success"].iloc[0] <= 1
