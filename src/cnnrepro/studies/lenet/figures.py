"""Study ``lenet``: its figures, drawn from the grid, the data probe and the CNN's snapshot
probe (the followed kernel and the peacock's feature maps)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ...io import read_csv, read_json, read_npz
from ...paths import StudyFiles
from ...plotting import image_panel
from ...study import Figures
from .names import CNN

FIGURES = Figures()
EVOLUTION = (("evolution", CNN),)  # the CNN's runs only


@FIGURES.register("Random training images of each class.", "lenet.samples", ("data_probe",))
def lenet_samples(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("data_probe"))
    samples, classes = data["samples"], data["classes"]
    fig, axes = plt.subplots(len(classes), samples.shape[1],
                             figsize=(samples.shape[1] * 0.9, len(classes) * 0.95), squeeze=False)
    for row, images, cls in zip(axes, samples, classes):
        for ax, image in zip(row, images):
            image_panel(image, fig_ax=(fig, ax))
        row[0].set_ylabel(cls, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("Random training images of each class")
    return fig


@FIGURES.register("Covariance matrix of a class-balanced random sample of flattened training "
                  "images (3072 = 3 channels x 32 x 32 pixels; channel blocks marked).",
                  "lenet.cov", ("data_probe",))
def lenet_covariance(files: StudyFiles) -> plt.Figure:
    data = read_npz(files.file("data_probe"))
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
    ax.set_title(f"Covariance of {int(data['n_images'])} flattened training images, "
                 f"{len(np.unique(data['covariance_labels']))} classes balanced "
                 f"({cov.shape[0]}x{cov.shape[1]}; channel blocks marked)")
    return fig


@FIGURES.register(
    "Grid search over Adam's learning rate and weight decay, one grid per protocol: accuracy "
    "after the grid's epochs. Clean grid: the final architecture and batch size, picked by "
    "accuracy on a validation split held out from the training images (square). Paper grid: "
    "as the original ran it (grid.paper_models: the CNN with 3x3 kernels, padding 1, at "
    "batch 200, not the final 5x5; the FFNN at batch 100), all training images, picked by "
    "test accuracy (circle), as the original. A quirk not reproduced: the original's FFNN "
    "grid reused one model across all points (each point went on from the previous point's "
    "weights); every point here starts from the same fresh weights (seed grid.seed).",
    "lenet.grid", ("grid_table", "selection"),
    when=lambda study: study["grid"]["enabled"],
    absent="The grid search did not run (studies.lenet.grid.enabled is false: the document's "
    "8 x 8 grid for 10 epochs per point and protocol is GPU-scale); the final models trained "
    "with the document's own winners, and the four grid-pick claims are not comparable.")
def lenet_grid(files: StudyFiles) -> plt.Figure:
    models = files.models
    panels = (("clean", "val_acc", "validation"), ("paper", "test_acc", "test"))
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 4.6 * len(models)), squeeze=False)
    for row, model in zip(axes, models):
        grid = read_csv(files.file("grid_table", model=model))
        pick = read_json(files.file("selection", model=model))
        for ax, (protocol, column, split) in zip(row, panels):
            if protocol not in pick:
                ax.set_axis_off()
                ax.set_title(f"{model}: no {protocol} grid (grid.protocols)")
                continue
            table = grid[grid["protocol"] == protocol].pivot(
                index="lr", columns="weight_decay", values=column)
            image = ax.imshow(100 * table.to_numpy(), cmap="viridis", vmin=0, origin="lower")
            ax.set_xticks(range(table.shape[1]), [f"{v:.1e}" for v in table.columns],
                          rotation=60, fontsize=7)
            ax.set_yticks(range(table.shape[0]), [f"{v:.1e}" for v in table.index], fontsize=7)
            for (i, j), value in np.ndenumerate(100 * table.to_numpy()):
                ax.text(j, i, "nan" if np.isnan(value) else f"{value:.0f}", ha="center",
                        va="center", fontsize=6, color="w")
            p = pick[protocol]
            ax.plot(p["wd_index"], p["lr_index"], "s" if protocol == "clean" else "o",
                    mfc="none", mec="red", ms=16, mew=2, label=f"{protocol} pick")
            ax.legend(fontsize=7, loc="upper right", markerscale=0.4)
            ax.set(xlabel="weight decay", ylabel="learning rate",
                   title=f"{model}, {protocol} grid: {split} accuracy")
            fig.colorbar(image, ax=ax, label="accuracy after the grid's epochs (%)")
    fig.suptitle("Grid search (Adam): final-epoch accuracy of every point")
    fig.tight_layout()
    return fig


def _evolution(files: StudyFiles) -> dict[str, np.ndarray]:
    return read_npz(files.run("evolution", CNN, files.seeds[0]))


@FIGURES.register("One conv1 kernel (each colour channel) every few epochs, from the initial "
                  "weights (epoch 0) on.", "lenet.kernels", EVOLUTION)
def lenet_kernels(files: StudyFiles) -> plt.Figure:
    evo = _evolution(files)
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
    fig.suptitle(f"One conv1 kernel, each colour channel, by epoch (seed {files.seeds[0]})")
    return fig


@FIGURES.register("The matching feature map, ReLU output and max-pool output of the peacock "
                  "image (official training index 6) by epoch.", "lenet.maps", EVOLUTION)
def lenet_feature_maps(files: StudyFiles) -> plt.Figure:
    evo = _evolution(files)
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
                 f"(seed {files.seeds[0]}); animated in the HTML report")
    return fig
