"""Batched paper-protocol blur search vs the original's one-image Captum loop.

Same model, same images, same sigma draws: prints both wall times, checks the answers
agree, and prints the speed-up ratio.

    python benchmarks/blur_search.py [--model results/vdk/vdk_cnnet/seed0/model.pt] [--images 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from cnnrepro.datasets.prepared import load_split
from cnnrepro.models import build_model
from cnnrepro.runtime import normalizer
from cnnrepro.studies.vdk import blur

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="trained model.pt (default: an untrained VDK CNNet)")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--data", type=Path, default=ROOT / "results/data/cifar10/test.npz")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.model:
        payload = torch.load(args.model, map_location="cpu", weights_only=True)
        spec = payload["spec"]
        model = build_model(spec["arch"], spec["options"], 10, 3, 32)
        model.load_state_dict(payload["state_dict"])
        mean, std = spec["normalize"]["mean"], spec["normalize"]["std"]
    else:
        model = build_model("vdk_cnnet", {}, 10, 3, 32)
        mean, std = [0.5] * 3, [0.5] * 3
    model.eval()
    test = load_split(args.data)
    x = normalizer(mean, std, torch.device("cpu"))(test.images[:args.images])
    y = test.labels[:args.images]
    kernels = blur.paper_kernel_sizes()
    sigmas = blur.draw_sigmas(len(y), len(kernels), 5, seed=0)

    tic = time.perf_counter()
    batched = blur.min_blur_paper(model, x, y, sigmas, kernels)
    t_batched = time.perf_counter() - tic
    tic = time.perf_counter()
    loop = [blur.min_blur_captum(model, x[i], int(y[i]), sigmas[:, :, i], kernels)
            for i in range(len(y))]
    t_loop = time.perf_counter() - tic
    agree = batched.tolist() == loop
    print(f"{len(y)} images, {'trained ' + str(args.model) if args.model else 'untrained VDK CNNet'}, "
          f"{torch.get_num_threads()} threads")
    print(f"  Captum one-image loop  {t_loop:8.2f} s")
    print(f"  batched search         {t_batched:8.2f} s")
    print(f"  ratio                  {t_loop / t_batched:8.1f}x   answers identical: {agree}")


if __name__ == "__main__":
    main()
