"""Plotting shared by every study: panel helpers, the three figures every study draws,
and :func:`render`, which draws one figure from a study's data files.

Helpers take and return ``(fig, ax)`` (as Captum's ``visualize_image_attr(plt_fig_axis=…)``
does) instead of touching pyplot's global state, so a study's figure composes them on its
own axes. Nothing is computed here that a stage did not already write.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path, read_csv, read_json, read_npz  # noqa: E402
from .paths import StudyFiles  # noqa: E402
from .study import Figures  # noqa: E402

FigAx = tuple[plt.Figure, plt.Axes]


def _fig_ax(fig_ax: FigAx | None, figsize: tuple[float, float] = (4.5, 4)) -> FigAx:
    return fig_ax if fig_ax is not None else plt.subplots(figsize=figsize)


def subplot_grid(n: int, ncols: int, size: float = 3.0, height: float | None = None
                 ) -> tuple[plt.Figure, list[plt.Axes]]:
    """A figure with ``n`` visible axes on a grid of ``ncols`` columns."""
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (height or size) * nrows),
                             squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def confusion_panel(counts: np.ndarray, classes: list[str], title: str,
                    fig_ax: FigAx | None = None) -> FigAx:
    """Row-normalised colours, counts written in the cells (up to 10 classes)."""
    fig, ax = _fig_ax(fig_ax)
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
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class")
    return fig, ax


def image_panel(image: np.ndarray, title: str = "", fig_ax: FigAx | None = None,
                cmap: str = "gray", symmetric: bool = False, colour: str = "black",
                fontsize: int = 7) -> FigAx:
    """One image without ticks: (C, H, W) RGB or a 2-D map (``symmetric``: a diverging map
    centred on zero)."""
    fig, ax = _fig_ax(fig_ax, (2, 2))
    image = np.squeeze(image)
    if image.ndim == 3:
        ax.imshow(image.transpose(1, 2, 0))
    elif symmetric:
        bound = max(np.abs(image).max(), 1e-12)
        ax.imshow(image, cmap=cmap, vmin=-bound, vmax=bound)
    else:
        ax.imshow(image, cmap=cmap)
    ax.set_title(title, fontsize=fontsize, color=colour)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig, ax


# --------------------------------------------------------------------------- shared figures

SHARED = Figures()


@SHARED.register("Train (dashed), validation (dotted, where the study has a validation split) "
                 "and test (solid) loss and accuracy per epoch, mean with a ±1 std band over "
                 "seeds; a marker per epoch.", "training curves", ("histories",))
def training_curves(files: StudyFiles) -> plt.Figure:
    history = read_csv(files.file("histories"))
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for i, model in enumerate(files.models):
        h = history[history["model"] == model].groupby("epoch")
        colour = f"C{i}"
        for split, style in (("train", "--"), ("val", ":"), ("test", "-")):
            for ax, column in ((ax_loss, f"{split}_loss"), (ax_acc, f"{split}_acc")):
                if column not in history or history[column].isna().all():
                    continue
                mean, std = h[column].mean(), h[column].std().fillna(0)
                scale = 100 if column.endswith("acc") else 1
                # markers: a one-epoch run is a point, which a line alone would not show
                ax.plot(mean.index, scale * mean, style, marker="o", markersize=3,
                        color=colour, label=f"{model} ({split})")
                ax.fill_between(mean.index, scale * (mean - std), scale * (mean + std),
                                color=colour, alpha=0.15)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss per epoch")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy per epoch")
    ax_acc.legend(fontsize=7)
    fig.suptitle(f"Training curves, mean ± std over {len(files.seeds)} seed(s)")
    return fig


@SHARED.register("Test-set confusion matrix of every model: colour is the row-normalised "
                 "fraction, numbers are counts averaged over seeds.", "confusion matrices",
                 ("confusion",))
def confusion_matrices(files: StudyFiles) -> plt.Figure:
    fig, axes = subplot_grid(len(files.models), min(len(files.models), 2), size=4.6, height=4.2)
    for ax, (model, runs) in zip(axes, files.by_model("confusion").items()):
        counts = np.mean([read_csv(f, index_col=0).to_numpy() for f in runs], axis=0)
        classes = read_csv(runs[0], index_col=0).index.tolist()
        confusion_panel(counts, classes, model, (fig, ax))
    fig.suptitle("Test confusion matrices (row-normalised; counts = mean over "
                 f"{len(files.seeds)} seed(s))")
    fig.tight_layout()
    return fig


@SHARED.register("One-vs-rest ROC curve per class on the test set (first seed); the legend "
                 "gives each class's AUC averaged over seeds.", "ROC curves",
                 ("roc", "metrics"))
def roc_curves(files: StudyFiles) -> plt.Figure:
    fig, axes = subplot_grid(len(files.models), min(len(files.models), 2), size=4.6, height=4.0)
    seed = files.seeds[0]
    for ax, model in zip(axes, files.models):
        roc = read_csv(files.run("roc", model, seed))
        metrics = [read_json(p) for p in files.by_model("metrics", [model])[model]]
        auc = {c: np.mean([m["auc"][c] for m in metrics]) for c in roc["class"].unique()}
        for i, (cls, curve) in enumerate(roc.groupby("class", sort=False)):
            ax.plot(curve["fpr"], curve["tpr"], color=plt.cm.tab10(i % 10), lw=1,
                    label=f"{cls} ({auc[cls]:.3f})")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate",
               title=f"{model} (seed {seed})")
        ax.legend(fontsize=6, title="class (AUC, seed mean)", title_fontsize=6)
    fig.suptitle("One-vs-rest ROC curves on the test set")
    fig.tight_layout()
    return fig


def attack_check_curves(panels: dict[str, pd.DataFrame], measure: str, ylabel: str
                        ) -> plt.Figure:
    """Any study's attack checks (rows of :func:`cnnrepro.attacks.attack_checks`, every
    seed): a panel per title in ``panels``, ``measure`` (``accuracy`` or ``success``, in %)
    of FGSM, PGD and noise against eps (in 1/255), mean ± std over seeds."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), sharey=True,
                             squeeze=False)
    for ax, (title, runs) in zip(axes[0], panels.items()):
        for attack, style in (("fgsm", "o-"), ("pgd", "s--"), ("noise", "^:")):
            curve = runs[runs["attack"] == attack].groupby("epsilon")[measure]
            mean, std = 100 * curve.mean(), 100 * curve.std().fillna(0)
            ax.errorbar(mean.index * 255, mean, yerr=std, fmt=style, ms=3, capsize=2,
                        label=attack)
        ax.set_title(title, fontsize=8)
        ax.set(xlabel="eps (x 1/255)", ylim=(0, 100))
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def randomisation_curves(files: StudyFiles, short: dict[str, str] | None = None,
                         models: list[str] | None = None) -> plt.Figure:
    """Any study's model-randomisation cascades (its ``randomisation`` run files, written
    by ``cnnrepro.attribution.randomisation_cascade``): per model, each method's Spearman
    rank correlation (left) and SSIM (right) with the trained maps against the last layer
    re-initialised, mean and standard deviation over images and seeds. ``short``: method
    labels; ``models``: those that ran the test (default: all)."""
    short = short or {}
    models = models or files.models
    frame = pd.concat([read_csv(p) for p in files.runs("randomisation", models).values()],
                      ignore_index=True)
    fig, axes = plt.subplots(len(models), 2, figsize=(9, 2.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        own = frame[frame["model"] == model]
        layers = own.drop_duplicates("step").sort_values("step")["layer"].tolist()
        for ax, measure in zip(row, ("spearman", "ssim")):
            for method, group in own.groupby("method", sort=False):
                stats = group.groupby("step")[measure].agg(["mean", "std"]).fillna(0.0)
                ax.errorbar(stats.index, stats["mean"], yerr=stats["std"], marker="o",
                            markersize=3, capsize=2, label=short.get(method, method))
            ax.axhline(0, color="grey", linewidth=0.5)
            ax.set_xticks(range(1, len(layers) + 1), layers, rotation=45, ha="right",
                          fontsize=6)
            ax.set_ylim(-0.3, 1.05)
            ax.set_title(f"{model}: {'Spearman' if measure == 'spearman' else 'SSIM'}",
                         fontsize=8)
        row[0].set_ylabel("similarity to the trained maps", fontsize=7)
    axes[0, 1].legend(fontsize=6)
    fig.tight_layout()
    return fig


RANDOMISATION_KEYS = ("image", "label", "steps", "provenance")  # the rest: a map per method


def randomisation_strip(files: StudyFiles, short: dict[str, str] | None = None,
                        models: list[str] | None = None) -> plt.Figure:
    """Any study's cascade strip (Adebayo et al.'s Fig. 2 layout; its
    ``randomisation_maps`` run files) for the first seed: per model and method, the map of
    one image for the trained model, then with each further layer re-initialised, each
    scaled to its maximum. ``short`` and ``models`` as :func:`randomisation_curves`."""
    short = short or {}
    models, seed = models or files.models, files.seeds[0]
    data = {m: read_npz(files.run("randomisation_maps", m, seed)) for m in models}
    rows = [(m, method) for m in models for method in data[m] if method not in RANDOMISATION_KEYS]
    columns = 1 + max(len(data[m]["steps"]) for m in models)
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.1 * columns, 1.15 * len(rows) + 0.5),
                             squeeze=False)
    for ax_row, (model, method) in zip(axes, rows):
        d = data[model]
        image_panel(d["image"], f"{model}\n{short.get(method, method)}", (fig, ax_row[0]),
                    fontsize=5)
        for ax, step, found in zip(ax_row[1:], d["steps"], d[method]):
            image_panel(found / max(float(found.max()), 1e-12), str(step), (fig, ax),
                        cmap="viridis", fontsize=5)
        for ax in ax_row[1 + len(d["steps"]):]:
            ax.axis("off")
    fig.suptitle(f"Cascading randomisation of one {data[models[0]]['label']} image (seed {seed})",
                 fontsize=8)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, out_png: str | Path, out_pdf: str | Path) -> None:
    """PNG for the HTML report, PDF for the LaTeX paper; both atomic."""
    for out, fmt in ((out_png, "png"), (out_pdf, "pdf")):
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format=fmt, dpi=130, bbox_inches="tight")
    plt.close(fig)
