"""FGSM sweep from one gradient per batch vs one torchattacks call per epsilon.

Same model, same images, the config's epsilon sweep: prints both wall times, whether every
image's prediction at every epsilon is identical, and the speed-up ratio.

    python benchmarks/fgsm_sweep.py [--model vdk_cnnet] [--images 500]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from cnnrepro import attacks
from cnnrepro import config as cfg
from cnnrepro.datasets.prepared import load_split, per_class_subset
from cnnrepro.models import build_model
from cnnrepro.runtime import Normalized, set_numerics

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def predict(wrapped, x):
    return wrapped(x).argmax(1)


def per_epsilon(wrapped, images01, labels, epsilons, batch_size) -> torch.Tensor:
    """The sweep as it was: one torchattacks FGSM call (one gradient) per epsilon."""
    return torch.stack([torch.cat([
        predict(wrapped, attacks.fgsm_perturb(wrapped, images01[i:i + batch_size],
                                              labels[i:i + batch_size], eps)
                if eps > 0 else images01[i:i + batch_size])
        for i in range(0, len(labels), batch_size)]) for eps in epsilons])


def one_gradient(wrapped, images01, labels, epsilons, batch_size) -> torch.Tensor:
    """The sweep as attacks.fgsm_clean runs it now."""
    preds = {eps: [] for eps in epsilons}
    for i in range(0, len(labels), batch_size):
        for eps, adv in attacks.fgsm_sweep(wrapped, images01[i:i + batch_size],
                                           labels[i:i + batch_size], epsilons):
            preds[eps].append(predict(wrapped, adv))
    return torch.stack([torch.cat(preds[eps]) for eps in epsilons])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vdk_cnnet", help="a model of the vdk study")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    set_numerics(True)
    config = cfg.load(ROOT / "config.yaml")
    spec = cfg.training_spec(config, "vdk", args.model)
    epsilons = config["studies"]["vdk"]["fgsm"]["epsilons"]
    test = load_split(ROOT / "results" / "data" / "cifar10" / "test.npz")
    test = test.take(per_class_subset(test.labels.numpy(), args.images))
    torch.manual_seed(0)
    model = build_model(spec["arch"], spec["options"], 10, 3, 32).eval()
    wrapped = Normalized(model, spec["normalize"]["mean"], spec["normalize"]["std"]).eval()
    images01, labels = test.images.float() / 255, test.labels
    batch = config["evaluation"]["batch_size"]
    print(f"vdk/{args.model} (untrained, seed 0), {len(labels)} CIFAR-10 test images, "
          f"{len(epsilons)} epsilons {epsilons}, batch {batch}, {torch.get_num_threads()} threads")
    one_gradient(wrapped, images01[:10], labels[:10], epsilons, batch)  # warm-up, untimed
    times = {}
    for name, sweep in (("per epsilon", per_epsilon), ("one gradient", one_gradient)):
        tic = time.perf_counter()
        times[name] = (sweep(wrapped, images01, labels, epsilons, batch),
                       time.perf_counter() - tic)
        print(f"  {name:12s} {times[name][1]:7.2f} s")
    same = torch.equal(times["per epsilon"][0], times["one gradient"][0])
    print(f"  every prediction identical: {same}; ratio "
          f"{times['per epsilon'][1] / times['one gradient'][1]:.2f}x")


if __name__ == "__main__":
    main()
