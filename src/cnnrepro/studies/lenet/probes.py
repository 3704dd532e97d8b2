"""Study ``lenet``: probes of the data and of the CNN's per-epoch snapshots, and the GIF.

``data_probe``: sample images per class and the covariance matrix of a class-balanced
random sample of flattened training images; ``evolution``: one conv1 kernel and its feature
map, ReLU and max-pool output on the followed training image (the peacock) at every shown
epoch; ``animate``: those maps as an animated GIF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ...datasets.prepared import load_split, per_class_subset
from ...io import atomic_path, read_npz, write_npz
from ...models import build_model
from ...runtime import normalizer
from ...study import Stages
from ...trained import read_weights, retrain_hint

STAGES = Stages()


def covariance(images: np.ndarray) -> np.ndarray:
    """Covariance of flattened images (pixel values in [0, 1]), one variable per pixel."""
    flat = images.reshape(len(images), -1).astype(np.float64) / 255
    return np.cov(flat, rowvar=False).astype(np.float32)


def covariance_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` random training images, balanced over classes. The original took
    the first 6,000 of CIFAR-10's official (mixed) order; the prepared arrays are sorted by
    class, where the first 6,000 would be 5,000 airplanes and 1,000 automobiles."""
    order = rng.permutation(len(labels))
    return np.sort(order[per_class_subset(labels[order], n)])


@STAGES.register(writes=("data_probe",), data=("train",), settings="probe", resources="report",
                 params=lambda config: {"seed": config["seeds"][0]})
def data_probe(*, data: dict[str, str], settings: dict[str, Any], seed: int, data_probe: str,
               threads: int | None = None) -> None:
    """Random training images per class and the covariance matrix of a class-balanced
    random sample of N training images."""
    train = load_split(data["train"])
    images, labels = train.images.numpy(), train.labels.numpy()
    rng = np.random.default_rng(seed)
    samples = np.stack([rng.choice(np.flatnonzero(labels == c), settings["samples_per_class"],
                                   replace=False) for c in range(len(train.classes))])
    sample = covariance_sample(labels, settings["covariance_images"], rng)
    write_npz(data_probe, samples=images[samples], classes=np.asarray(train.classes),
              covariance=covariance(images[sample]), covariance_indices=sample,
              covariance_labels=labels[sample], n_images=np.asarray(len(sample)))


@STAGES.register(writes=("evolution",), reads=("snapshots",), data=True, per_run=True,
                 settings="probe", resources="report")
def evolution(*, spec: dict[str, Any], snapshots: str, data: dict[str, str],
              settings: dict[str, Any], evolution: str, threads: int | None = None) -> None:
    """conv1 kernel ``k`` and its feature map, ReLU and max-pool output on the followed
    training image, for every ``every``-th stored epoch."""
    train = load_split(data["train"])
    cls = train.classes.index(settings["image_class"])
    index = np.flatnonzero(train.labels.numpy() == cls)[settings["image_rank"]]
    image = train.images[index:index + 1]
    x = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], torch.device("cpu"))(image)
    model = build_model(spec["arch"], spec["options"], len(train.classes), 3, 32).eval()
    conv, relu, pool = model.features[0], model.features[1], model.features[2]
    files = sorted(Path(snapshots).glob("epoch_*.pt"))
    if not files:
        raise FileNotFoundError(f"{snapshots}: no epoch_*.pt snapshots (snapshot_epochs empty?)")
    epochs = [int(f.stem.split("_")[1]) for f in files]
    keep = [(e, f) for e, f in zip(epochs, files) if e % settings["every"] == 0]
    k = settings["kernel"]
    out: dict[str, list[np.ndarray]] = {"kernels": [], "fmap": [], "relu": [], "pool": []}
    with torch.no_grad():
        for _, path in keep:
            model.load_state_dict(read_weights(path, retrain_hint(snapshots)))
            fmap = conv(x)
            out["kernels"].append(conv.weight[k].numpy())
            out["fmap"].append(fmap[0, k].numpy())
            out["relu"].append(relu(fmap)[0, k].numpy())
            out["pool"].append(pool(relu(fmap))[0, k].numpy())
    write_npz(evolution, epochs=np.asarray([e for e, _ in keep]), image=image[0].numpy(),
              image_index=np.asarray(index), **{n: np.stack(v) for n, v in out.items()})


def animation_frames(evolution: dict[str, np.ndarray], scale: int = 6) -> list[np.ndarray]:
    """One uint8 frame per shown epoch: feature map | ReLU | max-pool (upsampled), each
    scaled by the range over all epochs so frames are comparable."""
    frames = []
    panels = {n: evolution[n] for n in ("fmap", "relu", "pool")}
    panels["pool"] = panels["pool"].repeat(2, axis=1).repeat(2, axis=2)
    lo = {n: v.min() for n, v in panels.items()}
    hi = {n: max(v.max(), lo[n] + 1e-12) for n, v in panels.items()}
    for e in range(len(evolution["epochs"])):
        row = [(panels[n][e] - lo[n]) / (hi[n] - lo[n]) for n in panels]
        gap = np.ones((row[0].shape[0], 2))
        strip = np.concatenate([row[0], gap, row[1], gap, row[2]], axis=1)
        frames.append((255 * strip).astype(np.uint8).repeat(scale, 0).repeat(scale, 1))
    return frames


def write_gif(evolution_npz: str | Path, out_gif: str | Path, ms_per_frame: int = 400) -> None:
    frames = [Image.fromarray(f, mode="L") for f in animation_frames(read_npz(evolution_npz))]
    with atomic_path(out_gif) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=ms_per_frame, loop=0)




def animate(*, evolution: str, gif: str, threads: int | None = None) -> None:
    """The first seed's evolution as a GIF beside the figures (rule ``animate_lenet``: a
    report animation, built like the figures, not a stage)."""
    write_gif(evolution, gif)
