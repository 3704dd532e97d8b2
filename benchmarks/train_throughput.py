"""Training throughput: the pipeline's loop against a DataLoader loop, and GFLOP/s vs peak.

Prints, in one run on this machine:
  * images/s of cnnrepro's loop (uint8 tensors on the device, batches by slicing a seeded
    permutation, normalisation on the device) and of a naive torchvision loop (an image
    folder-like dataset of PIL images, per-sample ToTensor + Normalize, DataLoader) for
    the same model and batch size, and their ratio;
  * the achieved training GFLOP/s (3 × forward FLOPs per image) against a dense float32
    matmul peak measured on the same device;
  * with --all-models, the pipeline loop's images/s for every architecture of config.yaml.

    python benchmarks/train_throughput.py [--study vdk --model baseline_cnn] [--all-models]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from cnnrepro import config as cfg
from cnnrepro.datasets.prepared import per_class_subset
from cnnrepro.estimate import forward_flops
from cnnrepro.runtime import batches, normalizer, seed_everything, select_device
from cnnrepro.train import make_optimizer
from cnnrepro.trained import load_study_splits, make_model

ROOT = Path(__file__).resolve().parents[1]


def pipeline_loop(model, opt, images, labels, normalize, batch_size, generator) -> float:
    tic = time.perf_counter()
    order = torch.randperm(len(labels), generator=generator).to(images.device)
    for index in batches(len(labels), batch_size, order):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(normalize(images[index])), labels[index]).backward()
        opt.step()
    return len(labels) / (time.perf_counter() - tic)


class PILDataset(Dataset):
    """What a naive loop does: PIL images transformed one at a time."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        mode = "L" if images.shape[1] == 1 else "RGB"
        self.images = [Image.fromarray(img.transpose(1, 2, 0).squeeze(), mode) for img in images]
        self.labels, self.transform = labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), int(self.labels[i])


def dataloader_loop(model, opt, loader, device) -> float:
    tic, n = time.perf_counter(), 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        n += len(y)
    return n / (time.perf_counter() - tic)


def matmul_peak(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    tic = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * size ** 3 * repeats / (time.perf_counter() - tic) / 1e9


def setup(config, study, model_name, n_images, device):
    spec = cfg.training_spec(config, study, model_name)
    dataset = spec["dataset"]
    data = {s: ROOT / "results" / "data" / dataset / f"{s}.npz" for s in ("train", "test")}
    missing = [str(p) for p in data.values() if not p.exists()]
    if missing:
        raise SystemExit(f"prepared data missing: {missing}; run "
                         f"`snakemake --cores all results/data/{dataset}/train.npz "
                         f"results/data/{dataset}/test.npz` first")
    spec["subset"] = {"train": None, "test": None}
    spec["holdout_fraction"] = 0
    split = load_study_splits(spec, data)["train"]
    split = split.take(per_class_subset(split.labels, n_images))
    generator = seed_everything(0)
    model = make_model(spec, split).to(device)
    return spec, split, model, make_optimizer(model, spec["training"]), generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default="vdk")
    parser.add_argument("--model", default="baseline_cnn")
    parser.add_argument("--images", type=int, default=5000, help="training images timed")
    parser.add_argument("--all-models", action="store_true")
    args = parser.parse_args()
    config = cfg.load(ROOT / "config.yaml")
    device = select_device("auto")
    print(f"device: {device}, torch threads: {torch.get_num_threads()}")

    spec, split, model, opt, gen = setup(config, args.study, args.model, args.images, device)
    bs = spec["training"]["batch_size"]
    norm = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
    images, labels = split.images.to(device), split.labels.to(device)
    pipeline_loop(model, opt, images[:bs], labels[:bs], norm, bs, gen)  # warm-up
    ours = pipeline_loop(model, opt, images, labels, norm, bs, gen)
    transform = transforms.Compose([transforms.ToTensor(),
                                    transforms.Normalize(spec["normalize"]["mean"],
                                                         spec["normalize"]["std"])])
    loader = DataLoader(PILDataset(split.images.numpy(), split.labels.numpy(), transform),
                        batch_size=bs, shuffle=True, num_workers=0)
    naive = dataloader_loop(model, opt, loader, device)
    print(f"{args.study}/{args.model}, batch {bs}, {len(labels)} images")
    print(f"  pipeline loop   {ours:10.1f} images/s")
    print(f"  DataLoader loop {naive:10.1f} images/s")
    print(f"  ratio           {ours / naive:10.2f}x")

    shape = tuple(split.images.shape[1:2]) + (split.images.shape[2], len(split.classes))
    flops = forward_flops(spec, shape)
    achieved = 3 * flops * ours / 1e9
    peak = matmul_peak(device)
    print(f"  achieved {achieved:.1f} GFLOP/s (3 x {flops / 1e6:.2f} MFLOP per image) vs "
          f"matmul peak {peak:.1f} GFLOP/s: {100 * achieved / peak:.1f}% of peak")

    if args.all_models:
        print("\npipeline loop throughput per model (images/s, training):")
        for study, sspec in config["studies"].items():
            for name in sspec["models"]:
                n = 200 if sspec["dataset"] == "caltech101_3" else 2000
                spec, split, model, opt, gen = setup(config, study, name, n, device)
                bs = spec["training"]["batch_size"]
                norm = normalizer(spec["normalize"]["mean"], spec["normalize"]["std"], device)
                imgs, labs = split.images.to(device), split.labels.to(device)
                pipeline_loop(model, opt, imgs[:bs], labs[:bs], norm, bs, gen)
                rate = pipeline_loop(model, opt, imgs, labs, norm, bs, gen)
                print(f"  {study:8s} {name:14s} batch {bs:5d}  {rate:10.1f}")


if __name__ == "__main__":
    main()
