"""Attribution: the method registry (Captum), deletion/insertion faithfulness and the
model-randomisation test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import sample_images

from cnnrepro import attribution
from cnnrepro.runtime import standardizer


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


BATCHING = {"nt_samples_batch_size": 10, "internal_batch_size": None}  # the CPU default


def test_every_method_runs_on_every_vdk_architecture():
    from cnnrepro.models import build_model

    settings = {"nt_samples": 2, "nt_stdev": 0.2, "ig_steps": 4}
    for opts in ({}, {"branches": False}, {"branch_dilations": [2, 4]}):
        model = build_model("vdk_cnnet", opts, 10, 3, 32).eval()
        maps = attribution.explain(model, torch.randn(2, 3, 32, 32), torch.tensor([1, 2]),
                                   settings, seed=0, captum_batching=BATCHING)
        assert set(maps) == set(attribution.PAPER_METHODS)
        assert all(m.shape == (2, 3, 32, 32) and torch.isfinite(m).all() for m in maps.values())


def test_captum_batching_moves_smoothgrad_maps_only_by_float_rounding():
    """The CUDA defaults batch NoiseTunnel and IG differently from the CPU's: on the CPU the
    noise draws come out the same whatever the batching (one generator, drawn in order), so
    the maps agree to float32 rounding; the batch sizes are recorded because a CUDA
    generator need not behave so."""
    from cnnrepro.models import build_model

    torch.manual_seed(0)
    model = build_model("baseline_cnn", {}, 10, 3, 32).eval()
    x, target = torch.randn(2, 3, 32, 32), torch.tensor([3, 7])
    settings = {"nt_samples": 8, "nt_stdev": 0.2, "ig_steps": 10}
    one = attribution.explain(model, x, target, settings, 0,
                              {"nt_samples_batch_size": 8, "internal_batch_size": None},
                              methods=("integrated_gradients", "ig_smoothgrad_sq"))
    other = attribution.explain(model, x, target, settings, 0,
                                {"nt_samples_batch_size": 3, "internal_batch_size": 20},
                                methods=("integrated_gradients", "ig_smoothgrad_sq"))
    for method in one:
        scale = one[method].abs().max()
        assert ((one[method] - other[method]).abs().max() / scale).item() < 1e-5, method
    assert attribution.batching({"cpu": BATCHING, "cuda": {}}, torch.device("cpu")) == BATCHING


def test_ig_completeness_is_captums_delta_and_shrinks_with_steps(trained_mnist):
    model, x01, y, mean, std = sample_images(trained_mnist, 8)
    x = standardizer(mean, std, x01.device)(x01)
    coarse = attribution.ig_completeness(model, x, y, ig_steps=4)
    fine = attribution.ig_completeness(model, x, y, ig_steps=64)
    maps = attribution.integrated_gradients(model, x, y, ig_steps=64)
    # the delta is the attributions' sum against the logit difference, per image
    np.testing.assert_allclose(fine["delta"], np.abs(maps.sum((1, 2, 3)).detach().numpy()
                                                     - fine["gap"]), rtol=1e-3, atol=1e-4)
    assert np.median(fine["relative"]) < np.median(coarse["relative"])


def test_model_randomisation_changes_saliency_but_not_a_map_that_ignores_the_model(
        trained_mnist, monkeypatch):
    """Adebayo et al.'s test, on a small trained CNN: Saliency's maps lose their rank order
    when the layers are re-initialised; a "method" that returns the input whatever the
    model is caught, its maps as similar as can be. The claim rule says so."""
    from cnnrepro.claims import ClaimTable, similarity_claims

    model, x01, y, mean, std = sample_images(trained_mnist, 6)
    x = standardizer(mean, std, x01.device)(x01)
    monkeypatch.setitem(attribution.METHODS, "input_itself",
                        lambda model, x, target, **_: x.detach())
    before = [p.detach().clone() for p in model.parameters()]
    runs = []
    for seed in (0, 1):
        frame, strip = attribution.randomisation_cascade(model, attribution.explained_maps(
            x, y, {}, seed, BATCHING, ("saliency", "input_itself")), seed)
        runs.append(frame)
    layers = attribution.parameterised_layers(model)
    assert frame["step"].max() == len(layers)
    assert frame.drop_duplicates("step")["layer"].tolist() == [n for n, _ in layers][::-1]
    assert strip["steps"].tolist() == ["trained", *(n for n, _ in layers[::-1])]
    assert strip["saliency"].shape == (len(layers) + 1, 28, 28)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # a copy is cut
    last = frame[frame["step"] == frame["step"].max()].groupby("method")[["spearman", "ssim"]]
    assert last.mean().loc["saliency", "spearman"] < 0.5
    assert last.min().loc["input_itself"].tolist() == pytest.approx([1.0, 1.0])

    table = ClaimTable([0, 1])
    similarity_claims(table, "randomisation", "vdk", "cnn", runs, 0.5, ([0.9, 0.9], 0.2), ())
    # the other check: maps of the true class against another class. The input itself is
    # the same whatever the class; Saliency's maps follow the class's logit
    classes = [attribution.class_sensitivity(lambda target, s=seed: attribution.explained_maps(
        x, target, {}, s, BATCHING, ("saliency", "input_itself"))(model), y, 10, seed)
        for seed in (0, 1)]
    assert (classes[0]["other_class"] != y.numpy()[classes[0]["image"]]).all()
    assert classes[0].groupby("method")["spearman"].min()["input_itself"] == pytest.approx(1.0)
    similarity_claims(table, "class_sensitivity", "vdk", "cnn", classes, 0.9,
                      ([0.9, 0.9], 0.2), ())
    verdicts = {row["claim_id"]: row["verdict"] for row in table.rows}
    assert verdicts == {"vdk.sanity.randomisation.saliency.cnn": "holds",
                        "vdk.sanity.randomisation.input_itself.cnn": "does not hold",
                        "vdk.sanity.class_sensitivity.saliency.cnn": "holds",
                        "vdk.sanity.class_sensitivity.input_itself.cnn": "does not hold"}


def test_map_similarity_is_one_for_equal_maps_and_low_for_unrelated_ones():
    g = np.random.default_rng(0)
    a, b = g.random((16, 16)), g.random((16, 16))
    assert attribution.map_similarity(a, 3 * a) == pytest.approx({"spearman": 1.0, "ssim": 1.0})
    found = attribution.map_similarity(a, b)
    assert abs(found["spearman"]) < 0.3 and found["ssim"] < 0.3
    # a constant map (a silenced CAM) has no rank order: NaN, which the claims call
    # inconclusive, not a correlation of 0
    assert np.isnan(attribution.map_similarity(a, np.zeros_like(a))["spearman"])
