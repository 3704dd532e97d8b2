"""The mnist lab's probes on a quick-trained MNIST CNN, its structure counts and its claims."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnrepro import config as cfg
from cnnrepro.cost import layer_table
from cnnrepro.models import build_model
from cnnrepro.runtime import Normalized
from cnnrepro.studies.mnist import lab as lab_stage
from cnnrepro.studies.mnist.claims import structure_table
from cnnrepro.studies.mnist.lab import (
    activations,
    ascend,
    learn_noise,
    noise_probe,
    occlusion_maps,
    targeted_pairs,
)


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


def test_targeted_pairs_never_target_the_source_class():
    sources, targets = targeted_pairs(3, 10)
    assert len(sources) == 3 * 9 and not (sources == targets).any()
    assert sorted(targets[sources == 1].tolist()) == [0, 2, 3, 4, 5, 6, 7, 8, 9]


def test_noise_is_scored_on_held_out_images_it_never_saw(lab):
    _, model, x01, _ = lab
    learn, held = torch.arange(10), torch.arange(10, 60)
    out = noise_probe(model, x01, learn, held, 10, step=0.5, iterations=30,
                      gen=torch.Generator().manual_seed(0))
    assert out["held_out"]["images"] == 50 and out["in_sample"]["images"] == 10
    with torch.no_grad():  # the held-out share is the noises' effect on the held-out images
        pred = torch.stack([model(x01[held] + n).argmax(1) for n in out["noise"]])
    expected = (pred == torch.arange(10).view(-1, 1)).float().mean().item()
    assert out["held_out"]["to_target"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="disjoint"):
        noise_probe(model, x01, learn, torch.arange(5, 20), 10, 0.5, 1, torch.Generator())


@pytest.fixture(scope="module")
def lab_run(trained_mnist_run, mnist_data, full_config, tmp_path_factory):
    """The lab stage on the quickly trained CNN with small probe settings: its two files."""
    run, spec = trained_mnist_run
    out = tmp_path_factory.mktemp("lab_run")
    settings = copy.deepcopy(full_config["studies"]["mnist"]["lab"])
    settings["fooling"].update(iterations=5)
    settings["targeted"].update(iterations=20, step=0.05, betas=[0.0, 6.5025, 650.25])
    settings["noise"].update(images=10, held_out=50, iterations=5)
    lab_stage.lab(spec=spec, seed=0, weights=str(run / "model.pt"), data=mnist_data,
                  settings=settings, lab=str(out / "lab.npz"), lab_summary=str(out / "lab.json"))
    return np.load(out / "lab.npz"), json.loads((out / "lab.json").read_text())


def test_lab_scores_noise_on_disjoint_images_and_sweeps_beta(lab_run):
    arrays, summary = lab_run
    learned, held = arrays["noise_indices"], arrays["noise_held_out_indices"]
    assert len(learned) == 10 and len(held) == 50
    assert not set(learned.tolist()) & set(held.tolist())
    assert summary["noise"]["held_out"]["images"] == 50
    assert arrays["noise_held_out_pred"].shape == (10, 50)
    sweep = summary["targeted"]["beta_sweep"]
    assert [r["beta"] for r in sweep] == [0.0, 6.5025, 650.25]
    # the MSE term pulls the image back to its source: a large beta stays closest
    assert sweep[-1]["mean_mse"] < sweep[0]["mean_mse"]
    assert summary["targeted"]["pairs"] == 27
    assert not (arrays["targeted_targets"] == arrays["targeted_pair_sources"]).any()


def test_randomisation_stage_cascades_the_occlusion_maps(trained_mnist_run, mnist_data,
                                                         full_config, tmp_path):
    import pandas as pd

    run, spec = trained_mnist_run
    out = {name: str(tmp_path / f"{name}.{ext}") for name, ext in (
        ("randomisation", "csv"), ("randomisation_maps", "npz"), ("class_sensitivity", "csv"))}
    lab_stage.randomisation(spec=spec, seed=0, weights=str(run / "model.pt"), data=mnist_data,
                            settings={"images": 4, "seed": 0},
                            occlusion=full_config["studies"]["mnist"]["lab"]["occlusion"], **out)
    frame = pd.read_csv(out["randomisation"])
    assert set(frame["method"]) == {"occlusion"} and frame["image"].nunique() == 4
    # conv1, conv2, fc1, fc2 of the plain CNN, re-initialised from the output down
    steps = frame.drop_duplicates("step").sort_values("step")["layer"].tolist()
    assert steps == ["classifier.2", "classifier.0", "features.3", "features.0"]
    randomised = frame[frame["step"] == frame["step"].max()]["spearman"]
    assert randomised.mean() < 0.9  # a trained model's occlusion maps depend on its weights
    strip = np.load(out["randomisation_maps"])
    assert strip["occlusion"].shape == (5, 28, 28)  # the trained map, then each step
    provenance = json.loads(str(strip["provenance"]))  # the stage's config slice, stamped
    assert provenance["seed"] == 0 and provenance["device"].startswith("cpu")
    assert provenance["config"]["occlusion"]["patch"] == 7
    classes = pd.read_csv(out["class_sensitivity"])
    assert len(classes) == 4 and classes["other_class"].between(0, 9).all()
    assert (classes["test_index"] == frame.drop_duplicates("image")["test_index"]).all()


def _synthetic_mnist_run(root, seconds: dict[str, list[float]]):
    import pandas as pd

    from cnnrepro.io import write_csv, write_json
    from cnnrepro.studies import get

    files = get("mnist").study_files({"studies": {"mnist": {"models": dict.fromkeys(seconds)}},
                                      "seeds": [0, 1, 2]}, str(root))
    for (model, seed), path in files.runs("metrics").items():
        write_json(path, {"splits": {"test": {"accuracy": 0.990 + 0.001 * seed}}})
        write_json(files.run("train_meta", model, seed), {
            "train_seconds": seconds[model][seed],
            "provenance": {"host": "vm", "device": "cpu"}})
        net = build_model("mnist_cnn", {"batch_norm": model == "cnn_bn"}, 10, 1, 28).eval()
        layers = Path(files.run("layers", model, seed))
        layers.parent.mkdir(parents=True, exist_ok=True)
        layer_table(net, torch.zeros(1, 1, 28, 28)).to_csv(layers, index=False)
        share = {"to_target": 0.9, "control_to_target": 0.1, "images": 10}
        write_json(files.run("lab_summary", model, seed), {
            "fooling": {"threshold": 0.99, "reached": 1.0},
            "targeted": {"beta": 6.5025, "hit_rate": 0.95},
            "noise": {"in_sample": share, "held_out": {**share, "images": 1000}}})
        for test, last in (("randomisation", 0.1), ("class_sensitivity", 0.95)):
            write_csv(files.run(test, model, seed), pd.DataFrame(
                {"method": "occlusion", "step": [0, 1, 1], "image": [0, 0, 1],
                 "spearman": [1.0, last, last]}))
    return files


def test_mnist_claims_counts_once_and_batch_norm_is_slower(tmp_path):
    import pandas as pd

    from cnnrepro.studies.mnist.claims import claims

    files = _synthetic_mnist_run(tmp_path, {"cnn": [10.0, 11.0, 10.5],
                                            "cnn_bn": [13.0, 14.5, 12.0]})
    settings = cfg.load(cfg.ROOT / "config.yaml")["studies"]["mnist"]["claims"]
    out = {"claims": str(tmp_path / "claims.csv"), "structure": str(tmp_path / "s.csv")}
    claims(files=files, settings=settings, departures={}, preset="full", **out)
    table = pd.read_csv(out["claims"]).set_index("claim_id")
    assert table.loc["mnist.parameters", "n"] == 1 and table.loc["mnist.neurons", "n"] == 1
    assert table.loc["mnist.parameters", "verdict"] == "holds"
    assert table.loc["mnist.time", "verdict"] == "holds"
    assert table.loc["mnist.time", "per_seed"] == "0:1.3;1:1.31818;2:1.14286"
    assert table.loc["mnist.acc.cnn", "verdict"] == "holds"
    # the occlusion maps' sanity claims: every layer re-initialised (step 1 here) drops the
    # correlation to 0.1, another class leaves it at 0.95
    assert table.loc["mnist.sanity.randomisation.occlusion.cnn", "verdict"] == "holds"
    assert table.loc["mnist.sanity.randomisation.occlusion.cnn", "reproduced_mean"] == \
        pytest.approx(0.1)
    assert table.loc["mnist.sanity.class_sensitivity.occlusion.cnn_bn", "verdict"] == \
        "does not hold"
    # the same run timed on another machine: no verdict from that comparison
    meta = json.loads(Path(files.run("train_meta", "cnn_bn", 1)).read_text())
    meta["provenance"]["host"] = "other"
    Path(files.run("train_meta", "cnn_bn", 1)).write_text(json.dumps(meta))
    claims(files=files, settings=settings, departures={}, preset="full", **out)
    assert pd.read_csv(out["claims"]).set_index("claim_id").loc["mnist.time",
                                                                 "verdict"] == "inconclusive"
