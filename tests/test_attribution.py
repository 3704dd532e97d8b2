"""Attribution: the method registry (Captum) and deletion/insertion faithfulness."""

from __future__ import annotations

import torch

from cnnrepro import attribution
from cnnrepro.runtime import standardizer
from conftest import sample_images


def test_integrated_gradients_completeness(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 4)
    x = standardizer(mean, std, x01.device)(x01)
    attr = attribution.attribute(model, x, y, "integrated_gradients", ig_steps=300)
    with torch.no_grad():
        gap = model(x).gather(1, y[:, None]) - model(torch.zeros_like(x)).gather(1, y[:, None])
    assert torch.allclose(attr.sum((1, 2, 3)), gap[:, 0], rtol=0.02, atol=0.05)


def test_ig_deletion_beats_random_ordering(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 40)
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
        assert set(maps) == set(attribution.PAPER_METHODS)
        assert all(m.shape == (2, 3, 32, 32) and torch.isfinite(m).all() for m in maps.values())
