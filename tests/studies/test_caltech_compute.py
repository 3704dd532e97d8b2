"""Unit tests of the caltech study's compute code: tiny tensors, each a few seconds at most."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from captum.attr import GuidedBackprop
from conftest import stripes
from scipy import signal
from torch import nn
from torchvision.models import vgg19

from cnnrepro.conv_arithmetic import dilated_kernel_size, output_size
from cnnrepro.models import build_model, standardized_head, vgg19_transfer
from cnnrepro.receptive_field import geometry, receptive_field
from cnnrepro.studies.caltech import conv_basics as cb
from cnnrepro.studies.caltech import equivariance as eq
from cnnrepro.studies.caltech import filters, patches
from cnnrepro.studies.caltech import vgg_fallback as vf


def _seeded(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def vgg_features() -> nn.Sequential:
    """torchvision's VGG19 ``features``, randomly initialised once for this module."""
    torch.manual_seed(0)
    features = vgg19(weights=None).features
    for module in features:
        if isinstance(module, nn.ReLU):
            module.inplace = False  # autograd and Captum's hooks need the unmodified input
    return features.eval()


# --- conv basics -------------------------------------------------------------------------

def test_convolution_is_flipped_correlation_and_matches_scipy():
    g = _seeded()
    image = torch.rand(1, 1, 12, 10, generator=g, dtype=torch.float64)
    kernel = torch.randn(1, 1, 3, 3, generator=g, dtype=torch.float64)
    corr, conv = cb.correlate(image, kernel), cb.convolve(image, kernel)
    np.testing.assert_allclose(corr[0, 0], signal.correlate2d(image[0, 0], kernel[0, 0], "valid"),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv[0, 0], signal.convolve2d(image[0, 0], kernel[0, 0], "valid"),
                               rtol=1e-12, atol=1e-12)
    assert torch.allclose(conv, cb.correlate(image, kernel.flip(-2, -1)))
    result = cb.correlation_vs_convolution(image, kernel)
    assert result["size"] == (10, 8)
    assert result["max_abs_difference"] > 0  # a random kernel is not flip-symmetric
    symmetric = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    assert cb.correlation_vs_convolution(image, symmetric)["max_abs_difference"] == 0


def test_grayscale_uses_bt601_luma():
    images = torch.tensor([[[[255]], [[0]], [[0]]], [[[0]], [[255]], [[0]]],
                           [[[0]], [[0]], [[255]]], [[[255]], [[255]], [[255]]]],
                          dtype=torch.uint8)
    gray = cb.to_grayscale(images)
    assert gray.shape == (4, 1, 1, 1) and gray.dtype == torch.float32
    assert torch.allclose(gray.flatten(), torch.tensor([0.299, 0.587, 0.114, 1.0]))


def test_kaiming_filter_uses_fan_in_and_its_seed():
    weight = cb.kaiming_filter(out_channels=4000, in_channels=1, size=3, seed=1)
    assert abs(weight.std().item() / math.sqrt(2 / 9) - 1) < 0.03
    assert torch.equal(cb.kaiming_filter(seed=5), cb.kaiming_filter(seed=5))
    assert not torch.equal(cb.kaiming_filter(seed=5), cb.kaiming_filter(seed=6))


@pytest.mark.parametrize("n,f,p,s,d", [(224, 3, 0, 1, 1), (150, 3, 1, 4, 1), (31, 5, 2, 3, 1),
                                       (20, 3, 0, 1, 2), (17, 3, 3, 2, 3), (9, 4, 1, 5, 1)])
def test_output_size_formula_matches_conv2d(n, f, p, s, d):
    out = nn.functional.conv2d(torch.zeros(1, 1, n, n), torch.zeros(1, 1, f, f), stride=s,
                               padding=p, dilation=d)
    assert out.shape[-1] == output_size(n, f, stride=s, padding=p, dilation=d)


def test_two_stacked_layers_give_222_then_220():
    gray = cb.to_grayscale(torch.randint(0, 256, (1, 3, 224, 224), generator=_seeded(),
                                         dtype=torch.uint8))
    result = cb.two_layer_maps(gray)
    assert result["sizes"] == [(222, 222), (220, 220)]
    assert result["formula_sizes"] == [222, 220]
    assert [f.shape for f in result["filters"]] == [(32, 1, 3, 3), (64, 32, 3, 3)]
    assert result["maps"][1].shape == (1, 64, 220, 220)


def test_constant_init_never_breaks_symmetry_and_kaiming_does():
    g = _seeded()
    images, labels = torch.rand(6, 1, 16, 16, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    constant = cb.symmetry_experiment(images, labels, "constant", steps=8, lr=0.5)
    kaiming = cb.symmetry_experiment(images, labels, "kaiming", steps=8, lr=0.5)
    assert constant["spread"] == 0.0 and constant["filter_std"] == 0.0
    assert (constant["filters"] - 0.1).abs().max() > 0  # it trained, yet stayed symmetric
    assert kaiming["spread"] > 1e-2
    assert cb.symmetry_experiment(images, labels, "kaiming", steps=1, channels=3)[
        "filters"].shape[0] == 3  # the net's width is the config's
    maps = cb.initialisation_maps(images[:1])
    assert torch.equal(maps["constant"][:, :1].expand_as(maps["constant"]), maps["constant"])
    assert not torch.equal(maps["kaiming"][:, :1].expand_as(maps["kaiming"]), maps["kaiming"])


# --- hand-crafted filters and the settings table -----------------------------------------

def test_every_setting_measures_the_formula_size():
    gray = torch.rand(1, 1, 224, 224, generator=_seeded())
    table, maps = filters.settings_experiment(gray)
    assert len(table) == 2 * 4 + 2 * 3 + 4
    assert table["match"].all()
    assert (table["formula_size"] == table["measured_size"]).all()
    for row in table.itertuples():
        assert maps[f"{row.experiment}/{row.filter}/{row.setting}"].shape == (
            row.measured_size, row.measured_size)
    sizes = table.set_index(["experiment", "filter", "setting"])["measured_size"]
    assert sizes[("stride", "edge", "s1")] == 222 and sizes[("stride", "edge", "s6")] == 37
    assert sizes[("size", "gaussian", "f35")] == 190
    assert sizes[("padding", "gaussian", "equal_p1")] == 38  # 150 px, f 3, stride 4


def test_filters_are_what_they_claim():
    for size in (3, 5, 21, 35):
        kernel = filters.gaussian_kernel(size)
        assert kernel.shape == (size, size) and abs(kernel.sum().item() - 1) < 1e-6
        assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))
    assert filters.default_sigma(35) > filters.default_sigma(3)
    lap = filters.edge_kernel()
    assert lap.sum() == 0  # flat regions give 0, edges do not
    flat = torch.full((1, 1, 8, 8), 0.5)
    assert cb.correlate(flat, lap.view(1, 1, 3, 3)).abs().max() == 0


# --- receptive fields --------------------------------------------------------------------

def _check_box_against_gradient(features: nn.Sequential, image: torch.Tensor, row: int,
                                col: int) -> None:
    x = image.clone().requires_grad_(True)
    out = features(x)
    channel = int(out[0, :, row, col].argmax())  # a live neuron: its gradient is not zero
    (grad,) = torch.autograd.grad(out[0, channel, row, col], x)
    touched = grad[0].abs().sum(0) > 0
    box = receptive_field(features, row, col, image.shape[-2:])
    inside = torch.zeros_like(touched)
    inside[box.slices] = True
    assert touched.any()
    assert not (touched & ~inside).any(), "gradient outside the computed box"
    # not too large: something is touched within one output step of every edge
    jump = geometry(features)["jump"][0]
    rows, cols = torch.nonzero(touched, as_tuple=True)
    assert rows.min() < box.top + jump and rows.max() >= box.bottom - jump
    assert cols.min() < box.left + jump and cols.max() >= box.right - jump


def test_receptive_field_of_the_caltech_cnn_matches_the_gradient():
    torch.manual_seed(0)
    features = build_model("caltech_cnn", {}, 3, 3, 32).features
    assert geometry(features) == {"size": (6, 6), "jump": (2, 2), "start": (0, 0)}
    image = torch.randn(1, 3, 32, 32, generator=_seeded(1))
    for row, col in ((0, 0), (7, 4), (13, 13)):
        _check_box_against_gradient(features, image, row, col)


def test_receptive_field_of_vgg19_matches_the_gradient(vgg_features):
    features = vgg_features[:11]  # up to conv3_1
    assert isinstance(features[-1], nn.Conv2d)
    assert geometry(features)["size"] == (24, 24)
    image = torch.rand(1, 3, 64, 64, generator=_seeded(2))
    for row, col in ((8, 7), (0, 0), (15, 3)):  # middle, clipped corner, clipped bottom
        _check_box_against_gradient(features, image, row, col)
    corner = receptive_field(features, 0, 0, 64)
    assert corner.unclipped[:2] == (-10, -10) and (corner.top, corner.left) == (0, 0)
    assert corner.size == (24, 24) and (corner.bottom, corner.right) == (14, 14)


def test_receptive_field_sizes_known_values(vgg_features):
    full = vgg_features
    assert geometry(full[:35])["size"] == (252, 252)  # conv5_4, the classic VGG19 value
    assert geometry(full)["jump"] == (32, 32)
    assert dilated_kernel_size(3, 2) == 5 and dilated_kernel_size(3, 1) == 3
    assert geometry([nn.Conv2d(1, 1, 3, dilation=4)])["size"] == (9, 9)
    with pytest.raises(ValueError):
        geometry([nn.AdaptiveAvgPool2d(1)])


# --- patches and guided backpropagation --------------------------------------------------

def test_top_and_dead_neuron_policies():
    act = torch.zeros(4, 3, 3)
    act[1, 0, 0], act[1, 0, 1], act[2, 2, 2], act[0, 1, 1] = 9.0, 8.0, 5.0, 1.0
    distinct = patches.top_neurons(act, k=2)
    assert distinct[["channel", "row", "col"]].values.tolist() == [[1, 0, 0], [2, 2, 2]]
    anywhere = patches.top_neurons(act, k=2, distinct_channels=False)
    assert anywhere[["channel", "row", "col"]].values.tolist() == [[1, 0, 0], [1, 0, 1]]
    dead = patches.dead_neurons(act, n=3)
    assert dead["channel"].tolist() == [3] and dead["value"].tolist() == [0.0]


def test_neuron_report_patches_are_the_receptive_fields():
    torch.manual_seed(0)
    model = build_model("caltech_cnn", {}, 3, 3, 32).eval()
    raw = torch.randint(0, 256, (3, 32, 32), generator=_seeded(3), dtype=torch.uint8)
    index = patches.last_conv_relu(model.features)
    assert index == 3
    table, crops = patches.neuron_report(model.features, index, raw.float() / 255, raw.numpy())
    top = table[table["kind"] == "top"]
    assert len(top) == 5 and top["channel"].is_unique and (top["value"] > 0).all()
    assert top["value"].is_monotonic_decreasing
    for row, crop in zip(table.itertuples(), crops):
        assert crop.shape == (3, row.bottom - row.top, row.right - row.left)
        assert np.array_equal(crop, raw.numpy()[:, row.top:row.bottom, row.left:row.right])
        assert (row.rf_height, row.rf_width) == (5, 5)


class _NeuronOutput(nn.Module):
    """A forward function whose only output is one neuron of ``stack``."""

    def __init__(self, stack: nn.Module, neuron: tuple[int, int, int]):
        super().__init__()
        self.stack, self.neuron = stack, neuron

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, r, col = self.neuron
        return self.stack(x)[:, c, r, col].unsqueeze(1)


@pytest.mark.filterwarnings("ignore:Setting backward hooks on ReLU")
@pytest.mark.parametrize("net", ["caltech", "vgg"])
def test_guided_backprop_matches_captum_guided_backprop(net, vgg_features):
    if net == "caltech":
        torch.manual_seed(0)
        features = build_model("caltech_cnn", {}, 3, 3, 24).features.eval()
        index, size = 3, 24
    else:
        features, index, size = vgg_features, 11, 32  # the ReLU after conv3_1
    image = torch.randn(3, size, size, generator=_seeded(4))
    act = patches.activation(features, index, image)
    neuron = tuple(patches.top_neurons(act, k=1).loc[0, ["channel", "row", "col"]].astype(int))
    ours = patches.guided_backprop(features, index, image, neuron)
    wrapper = _NeuronOutput(features[: index + 1], neuron)
    direct = GuidedBackprop(wrapper).attribute(image.unsqueeze(0).requires_grad_(True),
                                               target=0)[0]
    assert ours.abs().max() > 0
    assert torch.allclose(ours, direct, atol=1e-7)
    # guided, not plain, gradient: differs once a ReLU sees negative gradient
    x = image.unsqueeze(0).requires_grad_(True)
    (plain,) = torch.autograd.grad(wrapper(x).sum(), x)
    assert not torch.allclose(ours, plain[0])
    # a dead neuron's guided backprop is zero everywhere (the document's grey images)
    dead = patches.dead_neurons(act, n=1)
    if len(dead):
        neuron = tuple(dead.loc[0, ["channel", "row", "col"]].astype(int))
        assert patches.guided_backprop(features, index, image, neuron).abs().max() == 0


# --- equivariance and invariance ---------------------------------------------------------

def test_circular_shift_commutes_with_circular_conv():
    g = _seeded()
    conv = nn.Conv2d(3, 4, 3, padding=1, padding_mode="circular", bias=False)
    x = torch.randn(2, 3, 16, 16, generator=g)
    with torch.no_grad():
        for dy, dx in ((0, 1), (0, 5), (3, 0), (-2, 7)):
            assert torch.allclose(conv(eq.shift(x, dy, dx)), eq.shift(conv(x), dy, dx),
                                  atol=1e-6)
    assert eq.equivariance_error(conv, x, 5, margin=0) < 1e-6


def test_equivariance_error_interior_and_strides():
    torch.manual_seed(0)
    model = build_model("caltech_cnn", {}, 3, 3, 32).eval()
    x = torch.randn(2, 3, 32, 32, generator=_seeded(5))
    prefix = eq.stride1_prefix(model.features)
    assert len(prefix) == 4  # conv, ReLU, conv, ReLU; the max-pool strides
    for mode in ("circular", "zero"):
        assert eq.equivariance_error(prefix, x, 3, mode) < 1e-6
        assert eq.equivariance_error(model.features, x, 4, mode) < 1e-6
        assert math.isnan(eq.equivariance_error(model.features, x, 3, mode))
    # the borders are where equivariance breaks: without the margin the error is not 0
    assert eq.equivariance_error(prefix, x, 3, "circular", margin=0) > 1e-3
    assert eq.shift(torch.arange(5.0).view(1, 5), 0, 2, "zero").tolist() == [[0, 0, 0, 1, 2]]
    assert eq.shift(torch.arange(5.0).view(1, 5), 0, -2, "zero").tolist() == [[2, 3, 4, 0, 0]]


def test_shift_study_rows():
    torch.manual_seed(0)
    model = build_model("caltech_cnn", {}, 3, 3, 24)
    x = torch.randn(3, 3, 24, 24, generator=_seeded(6))
    table = eq.shift_study(model, x, shifts=(1, 2, 4), modes=("circular",))
    assert list(table.columns) == ["mode", "shift", "equivariance_error", "feature_change",
                                   "prediction_change"]
    assert table["shift"].tolist() == [1, 2, 4]
    assert (table["equivariance_error"] < 1e-6).all()
    assert (table["feature_change"] > 0).all()  # flattened features are not invariant
    assert table["prediction_change"].between(0, 1).all()


# --- VGG19 fallback ----------------------------------------------------------------------

def test_linear_probe_on_random_vgg_features_beats_chance():
    data = {name: tuple(map(torch.from_numpy, stripes(n, 32, seed))) for name, n, seed in
            (("train", 10, 0), ("val", 5, 1), ("test", 5, 2))}
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.manual_seed(0)
    model = vgg19_transfer(3, 3, 32, weights=None)
    result = vf.backbone_probe(model, {k: v[0] for k, v in data.items()},
                               {k: v[1] for k, v in data.items()},
                               lambda u8: (u8.float() / 255 - mean) / std, seed=0)
    assert result["dim"] == 512 and result["n"] == {"train": 30, "val": 15, "test": 15}
    assert result["C"] in vf.PROBE_CS
    assert result["accuracy"]["test"] >= 0.8  # chance is 1/3


def test_linear_probe_standardises_with_training_statistics():
    g = np.random.default_rng(0)
    labels = {k: np.repeat(np.arange(3), n) for k, n in (("train", 20), ("val", 10),
                                                           ("test", 10))}
    centres = g.normal(size=(3, 20))
    # a large shared offset and a small class signal, as in the random VGG19 features
    feats = {k: 100 + 0.05 * (centres[y] + 0.5 * g.normal(size=(len(y), 20)))
             for k, y in labels.items()}
    result = vf.linear_probe(feats, labels)
    assert result["accuracy"]["train"] == 1.0 and result["accuracy"]["test"] >= 0.9
    assert set(result["val_by_C"]) == set(vf.PROBE_CS)


def test_scale_table_and_head_gradient_on_a_small_vgg():
    torch.manual_seed(0)
    model = vgg19_transfer(3, 3, 32, weights=None)
    x = torch.randn(4, 3, 32, 32, generator=_seeded(7))
    state = torch.get_rng_state()
    table = vf.scale_table(model, x)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched
    assert set(table["mode"]) == {"eval", "train"} and len(table) == 2 * 8
    by = table.set_index(["mode", "stage"])
    assert by.loc[("eval", "classifier[5] Dropout"), "dropout_noise_std"] == 0
    assert by.loc[("train", "classifier[5] Dropout"), "dropout_noise_std"] > 0
    assert by.loc[("eval", "features (avgpool, flat)"), "units"] == 25088
    grad = vf.head_gradient(model, x, torch.tensor([0, 1, 2, 0]))
    assert grad["head_grad_norm"] > 0 and abs(grad["loss"] - math.log(3)) < 0.5


def test_standardized_head_learns_where_the_raw_head_does_not():
    """The diagnosis in miniature: offset-dominated, low-variance features (like fc7 of the
    random VGG19) and the pipeline's SGD (lr 1e-3, momentum 0.9, batch 16)."""
    g = _seeded(8)
    labels = torch.arange(3).repeat_interleave(64)
    centres = torch.randn(3, 256, generator=g)
    feats = (0.04 + 0.005 * (centres[labels] + torch.randn(len(labels), 256, generator=g))
             ).clamp_min(0)

    def train(head: nn.Module) -> float:
        torch.manual_seed(0)
        optimizer = torch.optim.SGD(head.parameters(), lr=1e-3, momentum=0.9)
        order = torch.Generator().manual_seed(0)
        for _ in range(5):
            head.train()
            for idx in torch.randperm(len(labels), generator=order).split(16):
                optimizer.zero_grad()
                nn.functional.cross_entropy(head(feats[idx]), labels[idx]).backward()
                optimizer.step()
        head.eval()
        with torch.no_grad():
            return (head(feats).argmax(1) == labels).float().mean().item()

    torch.manual_seed(0)
    raw = train(nn.Linear(256, 3))
    torch.manual_seed(0)
    standardized = train(standardized_head(256, 3))
    assert raw < 0.6 and standardized > 0.95
