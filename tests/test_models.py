"""Models: counts against hand arithmetic, layer shapes, Captum safety, registry errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnrepro.cost import layer_table
from cnnrepro.models import ARCHITECTURES, FALLBACK_USED, ModelError, build_model


def conv(cin, cout, k):
    return cin * cout * k * k + cout


def linear(fin, fout):
    return fin * fout + fout


def test_mnist_cnn_counts_by_hand():
    model = build_model("mnist_cnn", {}, 10, 1, 28)
    table = layer_table(model, torch.zeros(1, 1, 28, 28))
    params = conv(1, 32, 3) + conv(32, 32, 3) + linear(32 * 7 * 7, 500) + linear(500, 10)
    assert params == 799_078  # the lab's reported total
    assert table["parameters"].sum() == params
    conv_params = table.loc[table.kind == "conv", "parameters"].sum()
    assert conv_params == conv(1, 32, 3) + conv(32, 32, 3) == 9_568
    neurons = 32 * 28 * 28 + 32 * 14 * 14 + 500 + 10
    assert table["neurons"].sum() == neurons == 31_870
    shapes = dict(zip(table.layer, table.output_shape))
    assert shapes["features.0"] == "32x28x28" and shapes["features.5"] == "32x7x7"

    bn = build_model("mnist_cnn", {"batch_norm": True}, 10, 1, 28)
    extra = 2 * 32 + 2 * 32 + 2 * 500  # gamma and beta of the three BatchNorm layers
    assert sum(p.numel() for p in bn.parameters()) == params + extra


def test_vdk_cnnet_counts_and_shapes_by_hand():
    model = build_model("vdk_cnnet", {}, 10, 3, 32)
    params = (3 * conv(3, 64, 8)          # main path and the two VDK branches
              + 2 * conv(128, 64, 3)      # the two fusion convs after concatenation
              + linear(64 * 8 * 8, 1024) + linear(1024, 128) + linear(128, 10))
    assert sum(p.numel() for p in model.parameters()) == params == 4_512_458
    table = layer_table(model, torch.zeros(1, 3, 32, 32)).set_index("layer")
    assert table.loc["conv_main", "output_shape"] == "64x32x32"
    assert table.loc["conv_vdk1", "input_shape"] == "3x16x16"    # pooled once
    assert table.loc["conv_vdk2", "input_shape"] == "3x8x8"      # pooled twice
    assert table.loc["conv_fuse1", "input_shape"] == "128x16x16"
    assert table.loc["conv_fuse2", "output_shape"] == "64x8x8"
    assert table.loc["down1", "type"] == "AvgPool2d"             # the code, not the text
    neurons = 64 * 32 * 32 + 64 * 16 * 16 + 64 * 16 * 16 + 64 * 8 * 8 + 64 * 8 * 8 + 1024 + 128 + 10
    assert table["neurons"].sum() == neurons

    baseline = build_model("baseline_cnn", {}, 10, 3, 32)
    base_params = conv(3, 6, 5) + conv(6, 16, 5) + linear(400, 120) + linear(120, 84) + linear(84, 10)
    assert sum(p.numel() for p in baseline.parameters()) == base_params == 62_006


def test_novdk_ablation_drops_exactly_the_branches():
    model = build_model("vdk_cnnet", {"branches": False}, 10, 3, 32)
    params = conv(3, 64, 8) + 2 * conv(64, 64, 3) + linear(4096, 1024) + linear(1024, 128) + linear(128, 10)
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("dilation, level", [(2, 1), (4, 2)])
def test_dilated_branch_receptive_field(dilation, level):
    model = build_model("vdk_cnnet", {"branch_dilations": [2, 4]}, 10, 3, 32)
    conv_layer = model.conv_vdk1 if level == 1 else model.conv_vdk2
    impulse = torch.zeros(1, 3, 33, 33, requires_grad=True)
    out = conv_layer(impulse)
    out[0, 0, 16, 16].backward()
    rows, cols = torch.nonzero(impulse.grad[0].abs().sum(0), as_tuple=True)
    size = 2 * dilation + 1  # a 3x3 kernel with dilation d spans (2d+1) x (2d+1)
    assert rows.max() - rows.min() + 1 == size and cols.max() - cols.min() + 1 == size
    assert len(rows) == 9  # only 9 taps are trainable: the low-density kernel


SHAPES = {"vdk_cnnet": (3, 32, 10), "baseline_cnn": (3, 32, 10), "mnist_cnn": (1, 28, 10),
          "lenet_cnn": (3, 32, 10), "ffnn": (3, 32, 10), "caltech_cnn": (3, 64, 3),
          "vgg19_transfer": (3, 64, 3), "gap_cnn": (1, 28, 10)}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_model_is_captum_safe(arch):
    channels, size, classes = SHAPES[arch]
    with pytest.warns(UserWarning) if arch == "vgg19_transfer" else _nothing():
        model = build_model(arch, {}, classes, channels, size).eval()
    calls: dict[nn.Module, int] = {}
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda m, i, o: calls.__setitem__(m, calls.get(m, 0) + 1))
               for m in leaves]
    out = model(torch.randn(2, channels, size, size))
    for h in handles:
        h.remove()
    assert out.shape == (2, classes)
    assert max(calls.values()) == 1, "a module used twice breaks Captum's module hooks"
    assert not any(getattr(m, "inplace", False) for m in model.modules())


def _nothing():
    import contextlib
    return contextlib.nullcontext()


def test_vgg_fallback_is_labelled_and_frozen():
    with pytest.warns(UserWarning, match="fallback"):
        model = build_model("vgg19_transfer", {}, 3, 3, 64)
    assert model.weights_used == FALLBACK_USED
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["classifier.6.1.weight", "classifier.6.1.bias"]
    assert isinstance(model.classifier[6][0], nn.BatchNorm1d)  # the standardised head


def test_vgg_at_224_pixels_skips_the_identity_pool_with_the_same_logits():
    """At 224 px the features are 7x7, so AdaptiveAvgPool2d((7, 7)) (no deterministic CUDA
    backward) is left out; the logits are the same bits with it."""
    torch.manual_seed(0)
    model = build_model("vgg19_transfer", {"weights": None}, 3, 3, 224).eval()
    assert isinstance(model.avgpool, torch.nn.Identity)
    x = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        without = model(x)
        model.avgpool = torch.nn.AdaptiveAvgPool2d((7, 7))
        assert torch.equal(model(x), without)
    small = build_model("vgg19_transfer", {"weights": None}, 3, 3, 64)
    assert isinstance(small.avgpool, torch.nn.AdaptiveAvgPool2d)  # 2x2 features: a real pool


def test_unknown_architecture_and_option_are_errors():
    with pytest.raises(ModelError, match="unknown architecture"):
        build_model("resnet", {}, 10, 3, 32)
    with pytest.raises(ModelError, match="chanels"):
        build_model("lenet_cnn", {"chanels": [1]}, 10, 3, 32)


def test_the_caltech_cnn_takes_one_kernel_size_per_layer():
    from cnnrepro.models import check_spec
    from cnnrepro.receptive_field import receptive_field

    model = build_model("caltech_cnn", {"channels": [4, 8], "kernel": [5, 7]}, 3, 3, 40)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(5, 5), (7, 7)]
    assert model(torch.zeros(2, 3, 40, 40)).shape == (2, 3)
    last = max(i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d))
    assert receptive_field(model.features[: last + 1], 10, 10, (40, 40)).size == (11, 11)
    with pytest.raises(ModelError, match="kernel"):  # two layers, three sizes
        check_spec("caltech_cnn", {"channels": [4, 8], "kernel": [3, 5, 7]}, "m", (3, 40, 3))


def test_the_literal_kernel_variant_builds_at_224_px_and_its_caption_says_so():
    from conftest import ROOT

    from cnnrepro import config as cfg
    from cnnrepro.models import check_spec
    from cnnrepro.studies import get

    config = cfg.load(ROOT / "config.yaml",
                      [ROOT / "config" / "variants" / "caltech-literal-kernels.yaml"])
    cnn = config["studies"]["caltech"]["models"]["cnn"]
    assert cnn["options"]["kernel"] == [32, 64] and cnn["options"]["channels"] == [32, 64]
    check_spec(cnn["arch"], cnn["options"], "cnn", (3, 224, 3))  # shapes only: no GMACs
    figure = get("caltech").figures["caltech_fig3_patches"]
    assert "[32, 64] filters of size [32, 64]" in figure.caption_for(config["studies"]["caltech"])
    default = cfg.load(ROOT / "config.yaml")["studies"]["caltech"]
    assert "[32, 64] filters of size 3 " in figure.caption_for(default)
