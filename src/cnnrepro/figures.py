"""Figures: each reads a study's data files and draws one figure; nothing is computed here
that a stage did not already write.

A figure's name is its function's name, its file name (``results/report/<study>/<name>.png``
and ``.pdf``) and its entry in the report, so a reader goes from the report to this code in
one step. :data:`EVERY` (all studies) and :data:`STUDY_FIGURES` say which studies draw which
figure, with its caption, the source-document artifact it reproduces, the data files it
reads, and when it applies; :func:`figures_for` combines them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .blur import IMMUNE  # noqa: E402
from .io import atomic_path, read_json  # noqa: E402

PROTOCOL_NOTE = {
    "paper": "paper protocol (the original code's procedure, quirks included)",
    "clean": "clean protocol (the question asked correctly)",
}


def _seed_files(root: Path, models: list[str], seeds: list[int], rel: str
                ) -> dict[str, list[Path]]:
    return {m: [root / m / f"seed{s}" / rel for s in seeds] for m in models}


def _grid(n: int, ncols: int, size: float = 3.0, height: float | None = None):
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (height or size) * nrows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat


# --------------------------------------------------------------------------- every study

def training_curves(root: Path, models: list[str], seeds: list[int]):
    history = pd.read_csv(root / "summary" / "history.csv")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, model in enumerate(models):
        h = history[history["model"] == model].groupby("epoch")
        colour = f"C{i}"
        for column, ax, style, label in (("train_loss", ax_loss, "--", "train"),
                                         ("test_loss", ax_loss, "-", "test"),
                                         ("train_acc", ax_acc, "--", "train"),
                                         ("test_acc", ax_acc, "-", "test")):
            if column not in history or history[column].isna().all():
                continue
            mean, std = h[column].mean(), h[column].std().fillna(0)
            scale = 100 if column.endswith("acc") else 1
            ax.plot(mean.index, scale * mean, style, color=colour, label=f"{model} ({label})")
            ax.fill_between(mean.index, scale * (mean - std), scale * (mean + std),
                            color=colour, alpha=0.15)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss per epoch")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy per epoch")
    ax_acc.legend(fontsize=7)
    fig.suptitle(f"Training curves, mean ± std over {len(seeds)} seed(s)")
    return fig


def confusion_matrices(root: Path, models: list[str], seeds: list[int]):
    fig, axes = _grid(len(models), min(len(models), 2), size=4.6, height=4.2)
    for ax, (model, files) in zip(axes, _seed_files(root, models, seeds,
                                                    "eval/confusion.csv").items()):
        counts = np.mean([pd.read_csv(f, index_col=0).to_numpy() for f in files], axis=0)
        classes = pd.read_csv(files[0], index_col=0).index.tolist()
        _confusion(ax, counts, classes, model)
    fig.suptitle(f"Test confusion matrices (row-normalised; counts = mean over {len(seeds)} seed(s))")
    fig.tight_layout()
    return fig


def _confusion(ax, counts: np.ndarray, classes: list[str], title: str) -> None:
    rows = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 10:
        for (i, j), value in np.ndenumerate(counts):
            if value:
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=6,
                        color="white" if rows[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(classes)), classes, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    plt.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")


def roc_curves(root: Path, models: list[str], seeds: list[int]):
    fig, axes = _grid(len(models), min(len(models), 2), size=4.6, height=4.0)
    for ax, model in zip(axes, models):
        roc = pd.read_csv(root / model / f"seed{seeds[0]}" / "eval" / "roc.csv")
        auc = {c: np.mean([read_json(root / model / f"seed{s}" / "eval" / "metrics.json")
                           ["auc"][c] for s in seeds]) for c in roc["class"].unique()}
        for i, (cls, curve) in enumerate(roc.groupby("class", sort=False)):
            ax.plot(curve["fpr"], curve["tpr"], color=plt.cm.tab10(i % 10), lw=1,
                    label=f"{cls} ({auc[cls]:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate",
               title=f"{model} (seed {seeds[0]})")
        ax.legend(fontsize=6, title="class (AUC, seed mean)", title_fontsize=6)
    fig.suptitle("One-vs-rest ROC curves on the test set")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- vdk

def vdk_attributions(root: Path, models: list[str], seeds: list[int]):
    methods = ["saliency", "integrated_gradients", "ig_smoothgrad_sq", "deeplift"]
    fig, axes = plt.subplots(len(models), len(methods) + 1,
                             figsize=(2.2 * (len(methods) + 1), 2.3 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        data = np.load(root / model / f"seed{seeds[0]}" / "explain" / "attributions.npz")
        image = data["images"][0].transpose(1, 2, 0)  # the car comes first
        p_true = data["probs"][0, data["labels"][0]]
        row[0].imshow(image)
        row[0].set_title(f"{model}\np(car) = {p_true:.2f}", fontsize=8)
        for ax, method in zip(row[1:], methods):
            heat = np.abs(data[method][0]).sum(0)
            ax.imshow(heat / max(heat.max(), 1e-12), cmap="inferno", vmin=0, vmax=1)
            ax.set_title(method.replace("_", " "), fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Attributions of the paper's car image (|attribution| summed over channels, "
                 f"scaled to max 1; seed {seeds[0]})", fontsize=9)
    fig.tight_layout()
    return fig


def vdk_faithfulness(root: Path, models: list[str], seeds: list[int]):
    table = pd.read_csv(root / "summary" / "faithfulness.csv")
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / len(models)
    for ax, kind, better in zip(axes, ("deletion", "insertion"), ("lower", "higher")):
        for i, model in enumerate(models):
            rows = table[table["model"] == model].set_index("method").reindex(methods)
            ax.bar(np.arange(len(methods)) + i * width, rows[f"{kind}_auc_mean"], width,
                   yerr=rows[f"{kind}_auc_std"].fillna(0), label=model, capsize=2)
        ax.set_xticks(np.arange(len(methods)) + width * (len(models) - 1) / 2,
                      [m.replace("_", " ") for m in methods], rotation=20, fontsize=8)
        ax.set(ylabel=f"{kind} AUC (class probability)",
               title=f"{kind.capitalize()} AUC ({better} = more faithful)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Attribution faithfulness, mean ± std over {len(seeds)} seed(s); "
                 "'random' is a random pixel order")
    fig.tight_layout()
    return fig


def vdk_fgsm_epsilon(root: Path, models: list[str], seeds: list[int]):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for model, files in _seed_files(root, models, seeds, "attack/fgsm_clean.csv").items():
        curve = pd.concat([pd.read_csv(f) for f in files]).groupby("epsilon")["accuracy"]
        mean, std = 100 * curve.mean(), 100 * curve.std().fillna(0)
        ax.errorbar(mean.index, mean, yerr=std, marker="o", ms=3, capsize=2, label=model)
    for eps, name in ((2 / 255, "2/255"), (8 / 255, "8/255"), (0.16, "0.16 (paper)")):
        ax.axvline(eps, color="grey", ls=":", lw=0.8)
        ax.text(eps, 97, name, rotation=90, fontsize=7, va="top", ha="right")
    # symlog: the curve falls within a few /255 and the sweep reaches 0.3
    ax.set_xscale("symlog", linthresh=1 / 255, linscale=0.5)
    ax.set_xlim(left=0)
    ax.set(xlabel="FGSM epsilon (pixel scale [0, 1], symlog)", ylabel="test accuracy (%)",
           ylim=(0, 100))
    ax.legend(fontsize=8)
    ax.set_title("Clean protocol: accuracy against true labels vs epsilon")
    fig.tight_layout()
    return fig


def vdk_fgsm_confusion(root: Path, models: list[str], seeds: list[int]):
    fig, axes = plt.subplots(len(models), 2, figsize=(9.5, 4.2 * len(models)), squeeze=False)
    for row, (model, files) in zip(axes, _seed_files(root, models, seeds,
                                                     "attack/fgsm.json").items()):
        runs = [read_json(f) for f in files]
        classes = runs[0]["classes"]
        paper = np.mean([r["paper"]["confusion"] for r in runs], axis=0)
        eps = runs[0]["paper"]["epsilon"]
        key = min(runs[0]["clean"]["confusion"], key=lambda k: abs(float(k) - eps))
        clean = np.mean([r["clean"]["confusion"][key] for r in runs], axis=0)
        _confusion(row[0], paper, classes, f"{model}: paper (score "
                   f"{np.mean([r['paper']['score'] for r in runs]):.3f})")
        _confusion(row[1], clean, classes, f"{model}: clean (eps {float(key):.3g})")
    fig.suptitle("Confusion after FGSM at eps 0.16. Paper: correctly classified images only, "
                 "clean vs adversarial prediction; clean: true label vs adversarial prediction",
                 fontsize=9)
    fig.tight_layout()
    return fig


def vdk_blur_histograms(root: Path, models: list[str], seeds: list[int]):
    fig, axes = plt.subplots(2, len(models), figsize=(3.4 * len(models), 6.2), squeeze=False)
    for col, (model, files) in enumerate(_seed_files(root, models, seeds,
                                                     "attack/blur.npz").items()):
        data = [np.load(f) for f in files]
        kernel = np.concatenate([d["paper_kernel"] for d in data])
        sizes = data[0]["kernel_sizes"]
        immune_at = sizes.max() + 4  # the original plots "immune" at 33
        kernel = np.where(kernel == IMMUNE, immune_at, kernel)
        axes[0, col].hist(kernel, bins=np.arange(0, immune_at + 3, 2), color="C0")
        axes[0, col].set(title=f"{model}: paper", xlabel=f"kernel size ({immune_at} = immune)",
                         ylabel="images")
        sigma = np.concatenate([d["clean_sigma"][d["correct"]] for d in data])
        grid = data[0]["sigma_grid"]
        step = grid[1] - grid[0] if len(grid) > 1 else 1.0
        sigma = np.where(np.isnan(sigma), grid.max() + step, sigma)
        axes[1, col].hist(sigma, bins=np.append(grid, grid.max() + step) - step / 2
                          if len(grid) > 1 else 3, color="C1")
        axes[1, col].set(title=f"{model}: clean", ylabel="images",
                         xlabel=f"sigma (px; {grid.max() + step:.3g} = immune)")
    fig.suptitle(f"Smallest blur that changes the prediction, pooled over {len(seeds)} seed(s)")
    fig.tight_layout()
    return fig


def vdk_immune(root: Path, models: list[str], seeds: list[int]):
    claims = pd.read_csv(root / "summary" / "claims.csv").set_index("claim_id")
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.38
    for j, proto in enumerate(("paper", "clean")):
        values = [[100 * read_json(f)[proto]["immune"] for f in files]
                  for files in _seed_files(root, models, seeds, "attack/blur.json").values()]
        ax.bar(np.arange(len(models)) + j * width, [np.mean(v) for v in values], width,
               yerr=[np.std(v, ddof=1) if len(v) > 1 else 0 for v in values], capsize=3,
               label=f"{proto} protocol")
    for i, model in enumerate(models):
        cid = f"vdk.tab1.{model}.paper"
        if cid in claims.index:
            # paper_value is a text column (some claims are qualitative): as text, matplotlib
            # would draw the line on a categorical axis at the bottom of the plot
            paper = float(claims.loc[cid, "paper_value"])
            ax.plot([i - width / 2, i + 1.5 * width], [paper] * 2,
                    "k--", lw=1.2, label="paper" if i == 0 else None)
    ax.set_xticks(np.arange(len(models)) + width / 2, models)
    ax.set(ylabel="immune images (%)", title="Blur-immune test images (Table 1), mean ± std")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- mnist

def _lab(root: Path, models: list[str], seeds: list[int]):
    """The first model's lab probes on the first seed (the document shows one network)."""
    return np.load(root / models[0] / f"seed{seeds[0]}" / "lab" / "lab.npz"), models[0]


def _digits(axes, images, titles, colours=None, cmap="gray", symmetric=False):
    for i, (ax, image, title) in enumerate(zip(axes, images, titles)):
        image = np.squeeze(image)
        if symmetric:
            bound = max(np.abs(image).max(), 1e-12)
            ax.imshow(image, cmap=cmap, vmin=-bound, vmax=bound)
        else:
            ax.imshow(image, cmap=cmap)
        ax.set_title(title, fontsize=7, color=(colours[i] if colours else "black"))
        ax.set_xticks([])
        ax.set_yticks([])


def mnist_predictions(root: Path, models: list[str], seeds: list[int]):
    lab, model = _lab(root, models, seeds)
    n = len(lab["shown_labels"])
    fig, axes = _grid(n, 10, size=1.2, height=1.45)
    correct = lab["shown_pred"] == lab["shown_labels"]
    _digits(axes, lab["shown_images"], [f"true {t} / pred {p}" for t, p in
                                        zip(lab["shown_labels"], lab["shown_pred"])],
            ["black" if c else "red" for c in correct])
    fig.suptitle(f"Random test images, {model} seed {seeds[0]} (red: misclassified)")
    return fig


def mnist_filters(root: Path, models: list[str], seeds: list[int]):
    lab, model = _lab(root, models, seeds)
    conv1, conv2 = lab["conv1"], lab["conv2"]
    fig = plt.figure(figsize=(11, 6.5))
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.1])
    _digits(top.subplots(2, 16).flat, conv1[:, 0], [f"{i}" for i in range(len(conv1))],
            cmap="RdBu_r", symmetric=True)
    top.suptitle(f"conv1: all {len(conv1)} filters (3x3; red +, blue -); {model}, seed "
                 f"{seeds[0]}", fontsize=9)
    axes = bottom.subplots(4, 8)
    for f in range(4):
        _digits(axes[f], conv2[f, :8], [f"in {c}" if f == 0 else "" for c in range(8)],
                cmap="RdBu_r", symmetric=True)
        axes[f, 0].set_ylabel(f"filter {f}", fontsize=7)
    bottom.suptitle("conv2: 8 input channels (columns) of 4 filters (rows)", fontsize=9)
    return fig


def mnist_activations(root: Path, models: list[str], seeds: list[int]):
    lab, model = _lab(root, models, seeds)
    fig = plt.figure(figsize=(12, 6.5))
    left, right = fig.subfigures(1, 2, width_ratios=[1, 5])
    _digits([left.subplots()], [lab["probe_image"]], ["input"])
    axes = right.subplots(8, 8)
    _digits(axes[:4].flat, lab["act1"], [f"conv1 #{i}" for i in range(len(lab["act1"]))],
            cmap="viridis")
    _digits(axes[4:].flat, lab["act2"], [f"conv2 #{i}" for i in range(len(lab["act2"]))],
            cmap="viridis")
    fig.suptitle(f"Activations (after ReLU) of one test image: conv1 (top 4 rows, 28x28) and "
                 f"conv2 (bottom 4 rows, 14x14); {model}, seed {seeds[0]}")
    return fig


def mnist_occlusion(root: Path, models: list[str], seeds: list[int]):
    lab, model = _lab(root, models, seeds)
    n = len(lab["occ_labels"])
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.4), squeeze=False)
    _digits(axes[0], lab["occ_images"], [f"true {t}, p={p:.2f}" for t, p in
                                         zip(lab["occ_labels"], lab["occ_p_true"])])
    for ax, p, drop in zip(axes[1], lab["occ_p_true"], lab["occ_drop"]):
        image = ax.imshow(p - drop[0], cmap="magma", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[1].tolist(), fraction=0.02, label="p(true class)")
    fig.suptitle(f"Occlusion: true-class probability with a grey patch centred on each pixel "
                 f"(Captum Occlusion); {model}, seed {seeds[0]}", fontsize=9)
    return fig


def mnist_fooling(root: Path, models: list[str], seeds: list[int]):
    lab, model = _lab(root, models, seeds)
    fig = plt.figure(figsize=(13, 4.2))
    left, right = fig.subfigures(1, 2, width_ratios=[1.6, 1])
    final = lab["fool_final"]
    _digits(left.subplots(2, 5).flat, lab["fool_images"],
            [f"target {t}: p={final[t, t]:.3f}\npred {final[t].argmax()}, it {s}"
             for t, s in enumerate(lab["fool_stopped"])])
    left.suptitle("Fooling images from Gaussian noise (one per class)", fontsize=9)
    ax = right.subplots()
    for t, cost in enumerate(lab["fool_cost"]):
        steps = min(int(lab["fool_stopped"][t]) + 1, len(cost))
        ax.plot(np.arange(steps), cost[:steps], lw=1, label=str(t))
    ax.set(xlabel="iteration", ylabel="cost = logit[target]", title="Cost vs iteration")
    ax.legend(fontsize=6, ncol=2, title="target", title_fontsize=6)
    fig.suptitle(f"{model}, seed {seeds[0]}", fontsize=9)
    return fig


def mnist_targeted(root: Path, models: list[str], seeds: list[int]):
    lab, model = _lab(root, models, seeds)
    sources, images = lab["targeted_sources"], lab["targeted_images"]
    n_classes = len(lab["classes"])
    probs, targets = lab["targeted_probs"], lab["targeted_targets"]
    fig, axes = plt.subplots(len(sources), n_classes + 1,
                             figsize=(1.25 * (n_classes + 1), 1.5 * len(sources)), squeeze=False)
    for r, row in enumerate(axes):
        pair = slice(r * n_classes, (r + 1) * n_classes)
        _digits(row[:1], sources[r:r + 1], [f"source ({lab['targeted_source_labels'][r]})"])
        _digits(row[1:], images[pair],
                [f"t {t}: {p.argmax()} ({p.max():.2f})" for t, p in zip(targets[pair],
                                                                        probs[pair])],
                ["black" if p.argmax() == t else "red" for t, p in zip(targets[pair],
                                                                       probs[pair])])
    fig.suptitle(f"Targeted images: ascend logit[target] - beta*MSE(x, source); title: target t: "
                 f"predicted (confidence); red: not the target. {model}, seed {seeds[0]}",
                 fontsize=8)
    return fig


def mnist_noise(root: Path, models: list[str], seeds: list[int]):
    lab, model = _lab(root, models, seeds)
    noise, images = lab["noise"], lab["noise_images"]
    pred, control = lab["noise_pred"], lab["control_pred"]
    n_classes, n_images = len(noise), len(images)
    fig, axes = plt.subplots(n_images + 1, n_classes,
                             figsize=(1.15 * n_classes, 1.25 * (n_images + 1)), squeeze=False)
    _digits(axes[0], noise, [f"noise -> {t}" for t in range(n_classes)], cmap="RdBu_r",
            symmetric=True)
    for i in range(n_images):
        _digits(axes[i + 1], images[i] + noise, [f"{lab['noise_labels'][i]}->{pred[t, i]}"
                                                 for t in range(n_classes)],
                ["black" if pred[t, i] == t else "grey" for t in range(n_classes)])
    hit = (pred == np.arange(n_classes)[:, None]).mean()
    ctrl = (control == np.arange(n_classes)[:, None]).mean()
    fig.suptitle(f"Learned noise per class (top row) added to {n_images} test images (true->pred; "
                 f"black: pred = noise class). Predicted as the noise's class: {hit:.0%}; "
                 f"same-norm Gaussian control: {ctrl:.0%}. {model}, seed {seeds[0]}", fontsize=8)
    return fig


# --------------------------------------------------------------------------- lenet

def lenet_samples(root: Path, models: list[str], seeds: list[int]):
    data = np.load(root / "probe" / "data.npz")
    samples, classes = data["samples"], data["classes"]
    fig, axes = plt.subplots(len(classes), samples.shape[1],
                             figsize=(samples.shape[1] * 0.9, len(classes) * 0.95), squeeze=False)
    for row, images, cls in zip(axes, samples, classes):
        for ax, image in zip(row, images):
            ax.imshow(image.transpose(1, 2, 0))
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(cls, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("Random training images of each class")
    return fig


def lenet_covariance(root: Path, models: list[str], seeds: list[int]):
    data = np.load(root / "probe" / "data.npz")
    cov = data["covariance"]
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    bound = np.abs(cov).max()
    image = ax.imshow(cov, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    block = cov.shape[0] // 3
    for edge in (block, 2 * block):
        ax.axhline(edge, color="k", lw=0.6)
        ax.axvline(edge, color="k", lw=0.6)
    ax.set_xticks([block / 2, 1.5 * block, 2.5 * block], ["R", "G", "B"])
    ax.set_yticks([block / 2, 1.5 * block, 2.5 * block], ["R", "G", "B"])
    fig.colorbar(image, ax=ax, label="covariance (pixel values in [0, 1])")
    ax.set_title(f"Covariance of {int(data['n_images'])} flattened training images "
                 f"({cov.shape[0]}x{cov.shape[1]}; channel blocks marked)")
    return fig


def lenet_grid(root: Path, models: list[str], seeds: list[int]):
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        grid = pd.read_csv(root / "grid" / model / "grid.csv")
        pick = read_json(root / "grid" / model / "selection.json")
        for ax, column, title in zip(row, ("val_acc", "test_acc"),
                                     ("validation (clean pick)", "test (paper pick)")):
            table = grid.pivot(index="lr", columns="weight_decay", values=column)
            image = ax.imshow(100 * table.to_numpy(), cmap="viridis", vmin=0, origin="lower")
            ax.set_xticks(range(table.shape[1]), [f"{v:.1e}" for v in table.columns],
                          rotation=60, fontsize=7)
            ax.set_yticks(range(table.shape[0]), [f"{v:.1e}" for v in table.index], fontsize=7)
            for (i, j), value in np.ndenumerate(100 * table.to_numpy()):
                ax.text(j, i, "nan" if np.isnan(value) else f"{value:.0f}", ha="center",
                        va="center", fontsize=6, color="w")
            for protocol, marker in (("clean", "s"), ("paper", "o")):
                p = pick[protocol]
                ax.plot(p["wd_index"], p["lr_index"], marker, mfc="none", mec="red", ms=16,
                        mew=2, label=f"{protocol} pick")
            ax.set(xlabel="weight decay", ylabel="learning rate", title=f"{model}: {title}")
            fig.colorbar(image, ax=ax, label="accuracy after the grid's epochs (%)")
        row[0].legend(fontsize=7, loc="upper right", markerscale=0.4)
    fig.suptitle("Grid search (Adam): final-epoch accuracy of every point, fresh weights each")
    fig.tight_layout()
    return fig


def _evolution(root: Path, seeds: list[int]):
    from .lenet import CNN
    return np.load(root / CNN / f"seed{seeds[0]}" / "probe" / "evolution.npz")


def lenet_kernels(root: Path, models: list[str], seeds: list[int]):
    evo = _evolution(root, seeds)
    kernels, epochs = evo["kernels"], evo["epochs"]
    fig, axes = plt.subplots(3, len(epochs), figsize=(0.9 * len(epochs) + 1, 3.2), squeeze=False)
    bound = np.abs(kernels).max()
    for c, (row, name) in enumerate(zip(axes, ("R", "G", "B"))):
        for ax, kernel, epoch in zip(row, kernels, epochs):
            image = ax.imshow(kernel[c], cmap="RdBu_r", vmin=-bound, vmax=bound)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_title(f"ep {epoch}", fontsize=7)
        row[0].set_ylabel(name)
    fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.02, label="weight")
    fig.suptitle(f"One conv1 kernel, each colour channel, by epoch (seed {seeds[0]})")
    return fig


def lenet_feature_maps(root: Path, models: list[str], seeds: list[int]):
    evo = _evolution(root, seeds)
    epochs = evo["epochs"]
    fig, axes = plt.subplots(3, len(epochs) + 1, figsize=(0.95 * (len(epochs) + 1), 3.3),
                             squeeze=False)
    axes[0, 0].imshow(evo["image"].transpose(1, 2, 0))
    axes[0, 0].set_title("image", fontsize=7)
    for r, name in enumerate(("fmap", "relu", "pool")):
        axes[r, 0].set_ylabel({"fmap": "conv1", "relu": "ReLU", "pool": "max-pool"}[name],
                              fontsize=8)
        for ax, value, epoch in zip(axes[r, 1:], evo[name], epochs):
            ax.imshow(value, cmap="gray")
            if r == 0:
                ax.set_title(f"ep {epoch}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[1:, 0]:
        ax.set_frame_on(False)  # keeps the row label
    fig.suptitle(f"The followed kernel's feature map, ReLU and max-pool output on the peacock "
                 f"(seed {seeds[0]}); animated in the HTML report")
    return fig


# --------------------------------------------------------------------------- registry

def _always(_study_spec: dict) -> bool:
    return True


@dataclass(frozen=True)
class Figure:
    draw: Callable[[Path, list[str], list[int]], plt.Figure]
    caption: str
    reproduces: str
    inputs: tuple[str, ...]  # relative to results/<study>; {model} and {seed} are expanded
    when: Callable[[dict], bool] = _always  # drawn only if true of the study's config


EVERY = {
    "training_curves": Figure(
        training_curves, "Train (dashed) and test (solid) loss and accuracy per epoch, mean "
        "with a ±1 std band over seeds.", "training curves", ("summary/history.csv",)),
    "confusion_matrices": Figure(
        confusion_matrices, "Test-set confusion matrix of every model: colour is the "
        "row-normalised fraction, numbers are counts averaged over seeds.", "confusion matrices",
        ("{model}/seed{seed}/eval/confusion.csv",)),
    "roc_curves": Figure(
        roc_curves, "One-vs-rest ROC curve per class on the test set (first seed); the "
        "legend gives each class's AUC averaged over seeds.", "ROC curves",
        ("{model}/seed{seed}/eval/roc.csv", "{model}/seed{seed}/eval/metrics.json")),
}

LAB = ("{model}/seed{seed}/lab/lab.npz",)
EVOLUTION = ("cnn/seed{seed}/probe/evolution.npz",)  # lenet.CNN
STUDY_FIGURES: dict[str, dict[str, Figure]] = {
    "lenet": {
        "lenet_samples": Figure(lenet_samples, "Random training images of each class.",
                                "lenet.samples", ("probe/data.npz",)),
        "lenet_covariance": Figure(
            lenet_covariance, "Covariance matrix of flattened training images (3072 = 3 "
            "channels x 32 x 32 pixels; channel blocks marked).", "lenet.cov",
            ("probe/data.npz",)),
        "lenet_grid": Figure(
            lenet_grid, "Grid search over Adam's learning rate and weight decay: accuracy after "
            "the grid's epochs on the validation split (clean pick, square) and on the test set "
            "(paper pick, circle, as the original).", "lenet.grid",
            ("grid/{model}/grid.csv", "grid/{model}/selection.json"),
            when=lambda sspec: sspec["grid"]["enabled"]),
        "lenet_kernels": Figure(
            lenet_kernels, "One conv1 kernel (each colour channel) every few epochs, from the "
            "initial weights (epoch 0) on.", "lenet.kernels", EVOLUTION),
        "lenet_feature_maps": Figure(
            lenet_feature_maps, "The matching feature map, ReLU output and max-pool output of the "
            "peacock image (official training index 6) by epoch.", "lenet.maps", EVOLUTION),
    },
    "mnist": {
        "mnist_predictions": Figure(
            mnist_predictions, "Random test images with their true and predicted class.",
            "mnist.preds", LAB),
        "mnist_filters": Figure(
            mnist_filters, "The learned conv1 filters, and 8 input channels of 4 conv2 filters "
            "(diverging colours, zero = white).", "mnist.filters", LAB),
        "mnist_activations": Figure(
            mnist_activations, "conv1 and conv2 activations (after ReLU) of one test image.",
            "mnist.activations", LAB),
        "mnist_occlusion": Figure(
            mnist_occlusion, "Occlusion: probability of the true class while a grey patch "
            "(size and stride in config) covers each pixel, for random test digits.",
            "mnist.occlusion", LAB),
        "mnist_fooling": Figure(
            mnist_fooling, "Non-targeted fooling images: gradient ascent on logit[target] from "
            "Gaussian noise around mid-grey until p(target) reaches the threshold or the "
            "iteration cap; cost (the target logit) per iteration.", "mnist.fool", LAB),
        "mnist_targeted": Figure(
            mnist_targeted, "Targeted images: from a test image, ascend logit[target] - "
            "beta*MSE(x, source) for every target class.", "mnist.targeted", LAB),
        "mnist_noise": Figure(
            mnist_noise, "One learned noise per class (zeros at start, ascend logit[target] of "
            "the noisy images), each added to the same test images; a Gaussian noise of the "
            "same norm is the control.", "mnist.noise", LAB),
    },
    "vdk": {
        "vdk_attributions": Figure(
            vdk_attributions, "Saliency, Integrated Gradients (zero baseline), NoiseTunnel(IG, "
            "SmoothGrad², stdev 0.2) and DeepLift (zero baseline) of the paper's car image "
            "(official test index 9), one row per model.", "Fig. 7 (vdk.fig7)",
            ("{model}/seed{seed}/explain/attributions.npz",)),
        "vdk_faithfulness": Figure(
            vdk_faithfulness, "Deletion and insertion AUC of each attribution method: pixels "
            "removed (set to the mean) or inserted in attribution order, class probability "
            "integrated; beyond the paper, which judged the maps by eye.",
            "beyond the paper (quantifies Fig. 7)", ("summary/faithfulness.csv",)),
        "vdk_fgsm_confusion": Figure(
            vdk_fgsm_confusion, "Confusion after FGSM at eps 0.16 under both protocols. The "
            "paper protocol attacks the un-normalised input with the original's bounds and "
            "scores only images that were correct before the attack.", "Fig. 8 (vdk.fig8)",
            ("{model}/seed{seed}/attack/fgsm.json",)),
        "vdk_fgsm_epsilon": Figure(
            vdk_fgsm_epsilon, "Clean protocol: torchattacks FGSM with normalisation inside the "
            "model, accuracy against the true labels over an epsilon sweep, mean ± std over "
            "seeds.", "Fig. 8 (vdk.fig8), robustness claim",
            ("{model}/seed{seed}/attack/fgsm_clean.csv",)),
        "vdk_blur_histograms": Figure(
            vdk_blur_histograms, "Smallest Gaussian blur that flips the prediction. Paper "
            "protocol: kernel sizes 1…29, 5 random sigmas each, on the normalised tensor, "
            "every attacked image (kernel 1 = already wrong). Clean protocol: a fixed sigma "
            "grid in pixel space, correctly classified images only.", "Fig. 9 (vdk.fig9)",
            ("{model}/seed{seed}/attack/blur.npz",)),
        "vdk_immune": Figure(
            vdk_immune, "Share of blur-immune images per model and protocol; dashed lines "
            "are the paper's Table 1 values.", "Table 1 (vdk.tab1)",
            ("{model}/seed{seed}/attack/blur.json", "summary/claims.csv")),
    },
}


# Animations written beside the figures (results/report/<study>/<name>.gif), HTML only.
ANIMATIONS = {"lenet": {"lenet_feature_maps": "The feature map, ReLU and max-pool output of "
                        "the peacock, one frame per shown epoch (left to right)."}}


def figures_for(study: str, study_spec: dict | None = None) -> dict[str, Figure]:
    """Every figure the report shows for ``study`` (with its config: those that apply)."""
    found = {**EVERY, **STUDY_FIGURES.get(study, {})}
    return {n: f for n, f in found.items() if study_spec is None or f.when(study_spec)}


def figure_inputs(study: str, name: str, models: list[str], seeds: list[int],
                  results: str | Path = "results") -> list[str]:
    paths = [template.format(model=m, seed=s) for template in figures_for(study)[name].inputs
             for m in models for s in seeds]
    return [str(Path(results) / study / p) for p in dict.fromkeys(paths)]


def render(study: str, name: str, models: list[str], seeds: list[int], out_png: str | Path,
           out_pdf: str | Path, results: str | Path = "results") -> None:
    """Draw one figure from the study's data files and save it as PNG (HTML) and PDF (LaTeX)."""
    missing = [p for p in figure_inputs(study, name, models, seeds, results)
               if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"figure {study}/{name} needs missing artifacts: {missing}")
    fig = figures_for(study)[name].draw(Path(results) / study, models, seeds)
    for out, fmt in ((out_png, "png"), (out_pdf, "pdf")):
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=130, bbox_inches="tight")
    plt.close(fig)
