"""Study ``mnist``: its figures, drawn from the lab's data files (``lab.npz``, ``lab.json``).

The document shows one network: every figure draws the first model on the first seed
(the beta sweep: every model, mean over seeds).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...io import read_json, read_npz
from ...paths import FIRST, StudyFiles
from ...plotting import image_panel, randomisation_curves, randomisation_strip, subplot_grid
from ...study import Figures

FIGURES = Figures()
MAP_CHECKS = ("mnist.sanity.randomisation.", "mnist.sanity.class_sensitivity.")


def _lab(files: StudyFiles) -> tuple[dict, str, int]:
    """The first model's lab probes on the first seed, the model and the seed."""
    model, seed = files.models[0], files.seeds[0]
    return read_npz(files.run("lab", model, seed)), model, seed


def _digits(fig, axes, images, titles, colours=None, cmap="gray", symmetric=False):
    for i, (ax, image, title) in enumerate(zip(axes, images, titles)):
        image_panel(image, title, (fig, ax), cmap=cmap, symmetric=symmetric,
                    colour=colours[i] if colours else "black")


LAB = (("lab", FIRST),)  # the lab figures show the first model (_lab)


@FIGURES.register("Random test images with their true and predicted class.", "mnist.preds", LAB)
def mnist_predictions(files: StudyFiles) -> plt.Figure:
    lab, model, seed = _lab(files)
    n = len(lab["shown_labels"])
    fig, axes = subplot_grid(n, 10, size=1.2, height=1.45)
    correct = lab["shown_pred"] == lab["shown_labels"]
    _digits(fig, axes, lab["shown_images"], [f"true {t} / pred {p}" for t, p in
                                        zip(lab["shown_labels"], lab["shown_pred"])],
            ["black" if c else "red" for c in correct])
    fig.suptitle(f"Random test images, {model} seed {seed} (red: misclassified)")
    return fig


@FIGURES.register("The learned conv1 filters, and 8 input channels of 4 conv2 filters "
                  "(diverging colours, zero = white).", "mnist.filters", LAB)
def mnist_filters(files: StudyFiles) -> plt.Figure:
    lab, model, seed = _lab(files)
    conv1, conv2 = lab["conv1"], lab["conv2"]
    fig = plt.figure(figsize=(11, 6.5))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    _digits(fig, top.subplots(2, 16).flat, conv1[:, 0], [f"{i}" for i in range(len(conv1))],
            cmap="RdBu_r", symmetric=True)
    top.suptitle(f"conv1: all {len(conv1)} filters (3x3; red +, blue -); {model}, seed "
                 f"{seed}", fontsize=9)
    axes = bottom.subplots(4, 8)
    for f in range(4):
        _digits(fig, axes[f], conv2[f, :8], [f"in {c}" if f == 0 else "" for c in range(8)],
                cmap="RdBu_r", symmetric=True)
        axes[f, 0].set_ylabel(f"filter {f}", fontsize=7)
    bottom.suptitle("conv2: 8 input channels (columns) of 4 filters (rows)", fontsize=9)
    return fig


@FIGURES.register("conv1 and conv2 activations (after ReLU) of one test image.",
                  "mnist.activations", LAB)
def mnist_activations(files: StudyFiles) -> plt.Figure:
    lab, model, seed = _lab(files)
    fig = plt.figure(figsize=(12, 6.5))
    left, right = fig.subfigures(1, 2, width_ratios=[1, 5])
    _digits(fig, [left.subplots()], [lab["probe_image"]], ["input"])
    axes = right.subplots(8, 8)
    _digits(fig, axes[:4].flat, lab["act1"], [f"conv1 #{i}" for i in range(len(lab["act1"]))],
            cmap="viridis")
    _digits(fig, axes[4:].flat, lab["act2"], [f"conv2 #{i}" for i in range(len(lab["act2"]))],
            cmap="viridis")
    fig.suptitle(f"Activations (after ReLU) of one test image: conv1 (top 4 rows, 28x28) and "
                 f"conv2 (bottom 4 rows, 14x14); {model}, seed {seed}")
    return fig


@FIGURES.register("Occlusion: probability of the true class while a grey patch (size "
                  "{lab[occlusion][patch]}, stride {lab[occlusion][stride]}) covers each "
                  "pixel, for random test digits.", "mnist.occlusion", LAB,
                  checks=MAP_CHECKS)
def mnist_occlusion(files: StudyFiles) -> plt.Figure:
    lab, model, seed = _lab(files)
    n = len(lab["occ_labels"])
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.4), squeeze=False)
    _digits(fig, axes[0], lab["occ_images"], [f"true {t}, p={p:.2f}" for t, p in
                                         zip(lab["occ_labels"], lab["occ_p_true"])])
    for ax, p, drop in zip(axes[1], lab["occ_p_true"], lab["occ_drop"]):
        image = ax.imshow(p - drop[0], cmap="magma", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[1].tolist(), fraction=0.02, label="p(true class)")
    fig.suptitle(f"Occlusion: true-class probability with a grey patch centred on each pixel "
                 f"(Captum Occlusion); {model}, seed {seed}", fontsize=9)
    return fig


@FIGURES.register("Non-targeted fooling images: gradient ascent on logit[target] from "
                  "Gaussian noise around mid-grey until p(target) reaches the threshold or "
                  "the iteration cap; cost (the target logit) per iteration.", "mnist.fool",
                  LAB)
def mnist_fooling(files: StudyFiles) -> plt.Figure:
    lab, model, seed = _lab(files)
    fig = plt.figure(figsize=(13, 4.2))
    left, right = fig.subfigures(1, 2, width_ratios=[1.6, 1])
    final = lab["fool_final"]
    _digits(fig, left.subplots(2, 5).flat, lab["fool_images"],
            [f"target {t}: p={final[t, t]:.3f}\npred {final[t].argmax()}, it {s}"
             for t, s in enumerate(lab["fool_stopped"])])
    left.suptitle("Fooling images from Gaussian noise (one per class)", fontsize=9)
    ax = right.subplots()
    for t, cost in enumerate(lab["fool_cost"]):
        steps = min(int(lab["fool_stopped"][t]) + 1, len(cost))
        ax.plot(np.arange(steps), cost[:steps], lw=1, label=str(t))
    ax.set(xlabel="iteration", ylabel="cost = logit[target]", title="Cost vs iteration")
    ax.legend(fontsize=6, ncol=2, title="target", title_fontsize=6)
    fig.suptitle(f"{model}, seed {seed}", fontsize=9)
    return fig


@FIGURES.register("Targeted images: from a test image, ascend logit[target] - "
                  "beta*MSE(x, source) toward every other class (beta {lab[targeted][beta]:g} "
                  "on the [0, 1] scale: the assignment's 0.0001 on 0-255 times 255^2).",
                  "mnist.targeted", LAB + (("lab_summary", FIRST),))
def mnist_targeted(files: StudyFiles) -> plt.Figure:
    lab, model, seed = _lab(files)
    sources, images = lab["targeted_sources"], lab["targeted_images"]
    n_classes = len(lab["classes"])
    probs, targets = lab["targeted_probs"], lab["targeted_targets"]
    pair_sources = lab["targeted_pair_sources"]
    fig, axes = plt.subplots(len(sources), n_classes + 1,
                             figsize=(1.25 * (n_classes + 1), 1.5 * len(sources)), squeeze=False)
    for r, row in enumerate(axes):
        _digits(fig, row[:1], sources[r:r + 1], [f"source ({lab['targeted_source_labels'][r]})"])
        pair = np.flatnonzero(pair_sources == r)
        for i in pair:  # column 1 + target; the source's own class stays empty
            t, p = targets[i], probs[i]
            image_panel(images[i], f"t {t}: {p.argmax()} ({p.max():.2f})",
                        (fig, row[1 + t]), colour="black" if p.argmax() == t else "red")
        for t in set(range(n_classes)) - set(targets[pair].tolist()):
            row[1 + t].set_visible(False)
    fig.suptitle(f"Targeted images: ascend logit[target] - beta*MSE(x, source), beta "
                 f"{read_json(files.run('lab_summary', model, seed))['targeted']['beta']:g}; "
                 f"title: target t: predicted (confidence); red: not the target. {model}, "
                 f"seed {seed}", fontsize=8)
    return fig


@FIGURES.register("The MSE weight beta of the targeted attack (on the [0, 1] scale; the "
                  "assignment's 0.0001 on 0-255 is {lab[targeted][beta]:g} here): the share of "
                  "images classified as the target and their mean squared distance to the "
                  "source, by beta, mean ± std over seeds. A larger beta keeps the image closer "
                  "to its source and succeeds less often.",
                  "mnist.targeted (beta, beyond the lab)", ("lab_summary",))
def mnist_targeted_beta(files: StudyFiles) -> plt.Figure:
    fig, (ax_hit, ax_mse) = plt.subplots(1, 2, figsize=(11, 4))
    betas = []
    for model, paths in files.by_model("lab_summary").items():
        sweep = pd.DataFrame([row for p in paths for row in read_json(p)["targeted"]["beta_sweep"]])
        stats = sweep.groupby("beta")[["mean_mse", "hit_rate"]].agg(["mean", "std"]).fillna(0)
        betas += stats.index.tolist()
        ax_hit.errorbar(stats.index, 100 * stats[("hit_rate", "mean")],
                        yerr=100 * stats[("hit_rate", "std")], marker="o", ms=4, capsize=2,
                        label=model)
        ax_mse.errorbar(stats.index, stats[("mean_mse", "mean")], yerr=stats[("mean_mse", "std")],
                        marker="o", ms=4, capsize=2, label=model)
    first = read_json(files.run("lab_summary", files.models[0], files.seeds[0]))
    chosen = first["targeted"]["beta"]
    positive = [b for b in betas if b > 0]
    for ax in (ax_hit, ax_mse):  # symlog: the sweep starts at beta 0 (no MSE term)
        ax.set_xscale("symlog", linthresh=min(positive) if positive else 1.0)
        ax.set_xticks(sorted(set(betas)), [f"{b:g}" for b in sorted(set(betas))], fontsize=7)
        ax.minorticks_off()
        ax.axvline(chosen, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("beta ([0, 1] scale, symlog; dotted: the assignment's value)")
        ax.legend(fontsize=8)
    ax_hit.set(ylabel="classified as the target (%)", ylim=(-2, 102), title="Success")
    ax_mse.set(ylabel="mean squared distance to the source", title="Distance to the source")
    fig.suptitle("Targeted attack: the MSE weight trades distance to the source for success")
    fig.tight_layout()
    return fig


@FIGURES.register("One learned noise per class (zeros at start, ascend logit[target] of the "
                  "noisy images), each added to the test images it was learned on; a Gaussian "
                  "noise of the same norm is the control. The claim scores the noises on "
                  "{lab[noise][held_out]} further test images they never saw.", "mnist.noise",
                  LAB + (("lab_summary", FIRST),))
def mnist_noise(files: StudyFiles) -> plt.Figure:
    lab, model, seed = _lab(files)
    shares = read_json(files.run("lab_summary", model, seed))["noise"]
    noise, images = lab["noise"], lab["noise_images"]
    pred = lab["noise_pred"]
    n_classes, n_images = len(noise), len(images)
    fig, axes = plt.subplots(n_images + 1, n_classes,
                             figsize=(1.15 * n_classes, 1.25 * (n_images + 1)), squeeze=False)
    _digits(fig, axes[0], noise, [f"noise -> {t}" for t in range(n_classes)], cmap="RdBu_r",
            symmetric=True)
    for i in range(n_images):
        _digits(fig, axes[i + 1], images[i] + noise, [f"{lab['noise_labels'][i]}->{pred[t, i]}"
                                                 for t in range(n_classes)],
                ["black" if pred[t, i] == t else "grey" for t in range(n_classes)])
    inside, held = shares["in_sample"], shares["held_out"]
    fig.suptitle(f"Learned noise per class (top row) added to the {n_images} test images it was "
                 f"learned on (true->pred; black: pred = noise class). {model}, seed {seed}\n"
                 f"Predicted as the noise's class, in-sample: {inside['to_target']:.0%} "
                 f"(same-norm Gaussian control {inside['control_to_target']:.0%}); on "
                 f"{held['images']} held-out images: {held['to_target']:.0%} (control "
                 f"{held['control_to_target']:.0%})", fontsize=8)
    return fig


@FIGURES.register(
    "Model randomisation of the occlusion maps (Adebayo et al. 2018; beyond the lab): the "
    "layers re-initialised from the output down, one more at a time (x axis: the last layer "
    "re-initialised), and the maps (absolute drop of the true class's probability, the lab's "
    "patch and stride) of {randomisation[images]} class-balanced test digits compared with "
    "the trained model's: Spearman rank correlation (left) and SSIM (right), mean and "
    "standard deviation over images and seeds, one row per model. Maps that depend on the "
    "learned weights fall towards 0; the claims mnist.sanity.randomisation.* hold where the "
    "mean correlation with every layer re-initialised is below "
    "{claims[randomisation_similarity]} on every seed.",
    "beyond the lab (its occlusion maps)", ("randomisation",), checks=MAP_CHECKS)
def mnist_randomisation(files: StudyFiles) -> plt.Figure:
    return randomisation_curves(files)


@FIGURES.register(
    "The cascade of model randomisation for one test digit (Adebayo et al. 2018, their Fig. "
    "2 layout): per model, the occlusion map (scaled to its maximum) of the trained model, "
    "then with the layers re-initialised from the output down up to the one named above the "
    "column.", "beyond the lab (its occlusion maps)", ("randomisation_maps",), per_seed=True,
    checks=("mnist.sanity.randomisation.",))
def mnist_randomisation_strip(files: StudyFiles) -> plt.Figure:
    return randomisation_strip(files)
