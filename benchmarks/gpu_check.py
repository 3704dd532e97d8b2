"""GPU check: the vdk study's paper protocol in full, and every CUDA path, in one run.

On a CUDA machine, within ``--budget`` seconds (default 540: a ten-minute lease call with
room to write the results), in this order, each step timed and written as it ends:

1. **environment**: Python, torch, CUDA, cuDNN, the GPU, the package versions;
2. **fp32**: a convolution and a matmul against float64 on the device, in the pipeline's
   full-float32 mode (``runtime.precision: ieee``) and in TF32, which would show as a
   relative error near 1e-3;
3. **determinism**: two 2-epoch trainings of VDK CNNet (the pipeline's ``train``, under
   ``torch.use_deterministic_algorithms``) give identical weights and metrics;
4. **training**: the Baseline and VDK CNNet, seed 0, the paper protocol of ``config.yaml``
   (374 epochs, batch 1000, SGD lr 0.001 momentum 0.9, Normalize(0.5, 0.5)), tested on all
   10,000 test images each epoch: seconds per epoch, GPU memory, the accuracy at the last
   epoch against the paper's. Training stops at a deadline (``--reserve`` seconds before
   the budget ends, for the stages) with its state saved: the same command again resumes
   (``cnnrepro.train.Stopped``), and the stages then run on the model as far as it got;
5. **stages**: evaluation with latency and each of the study's per-run stages (attribution,
   FGSM both protocols, the blur search, the attack checks) once per model, called as
   their rules call them (``cnnrepro.rules.call``), deterministic algorithms on: an op
   that raises is recorded with its traceback and the next stage runs;
6. **lenet grid**: the vectorised grid of the lenet CNN at full size for the clean
   protocol, if the budget has room for it.

Everything lands in ``--out``: ``gpu_check.json`` (every number; rewritten after each
step, so a run cut short keeps what it measured), ``gpu_check.md`` (a summary),
``history_<model>.csv`` and ``gpu_check.log``. Models, data and checkpoints live in
``--work`` (the results tree's layout), where a second call resumes.

    python benchmarks/gpu_check.py --out DIR [--work DIR] [--mirror ../shared/datasets]
    python benchmarks/gpu_check.py --out DIR --tiny    # CPU mode: the quick preset's sizes

``--tiny`` overlays the quick preset (1 epoch on a 1,000-image subset) and runs every step
on whatever device there is: the test suite runs it on the CPU (tests/test_gpu_check.py),
so that on a GPU only the real run remains.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch
import torch.nn.functional as F

from cnnrepro import config as cfg
from cnnrepro import rules, studies
from cnnrepro.datasets import estimate_sizes, input_shape
from cnnrepro.datasets.prepared import prepare_split
from cnnrepro.estimate import forward_flops, run_cost
from cnnrepro.evaluate import evaluate
from cnnrepro.io import read_csv, write_json, write_torch
from cnnrepro.paths import EVALUATE_OUTPUTS, TRAIN_OUTPUTS
from cnnrepro.provenance import git_commit, versions
from cnnrepro.runtime import PRECISIONS, select_device, set_numerics
from cnnrepro.spec import deep_update, evaluation_spec, training_spec
from cnnrepro.studies.vdk.claims import PAPER
from cnnrepro.train import Stopped, train
from cnnrepro.trained import read_weights

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("vdk_cnnet", "baseline_cnn")
TRAIN_ORDER = ("baseline_cnn", "vdk_cnnet")  # the cheap one first: a deadline cuts one, not both
SEED = 0
STUDY = "vdk"
log = logging.getLogger("gpu_check")
# --tiny: the quick preset, smaller still (the test's data has 200 training images)
TINY = {"studies": {
    "vdk": {"subset": {"train": 200, "test": 100},
            "blur": {"paper": {"arg_max": 5, "attempts": 1}, "clean": {"sigma_step": 2.0}},
            "attack_checks": {"images": 20, "pgd_steps": 2}},
    "lenet": {"subset": {"train": 200, "test": 100}}}}


class Clock:
    """The run's deadline: seconds left of the budget."""
    def __init__(self, budget: float):
        self.start, self.budget = time.monotonic(), budget

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def at(self, reserve: float) -> float:
        """The ``time.monotonic()`` when only ``reserve`` seconds are left."""
        return self.start + self.budget - reserve


class Results(dict):
    """The JSON record, written atomically after every step."""

    def __init__(self, out: Path):
        super().__init__()
        self.out = out

    def save(self) -> None:
        write_json(self.out / "gpu_check.json", dict(self))
        (self.out / "gpu_check.md").write_text(summary(self))


@contextlib.contextmanager
def step(results: Results, name: str, key: str | None = None) -> Iterator[dict[str, Any]]:
    """Time one step; record its numbers, or its error and traceback (the run goes on)."""
    record: dict[str, Any] = {}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    tic = time.perf_counter()
    log.info("step %s%s", name, f" ({key})" if key else "")
    try:
        yield record
        record["ok"] = True
    except Exception as err:  # a finding to record, not a reason to stop the check
        record.update(ok=False, error=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc(limit=8))
        log.error("step %s failed: %s", name, record["error"])
    record["seconds"] = round(time.perf_counter() - tic, 3)
    if torch.cuda.is_available():
        record["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if key is None:
        results[name] = record
    else:
        results.setdefault(name, {})[key] = record
    results.save()


def load_config(tiny: bool, mirror: Path | None) -> dict[str, Any]:
    """``config.yaml`` (the paper protocol), seed 0, the vdk study's two headline models;
    ``tiny``: with the quick preset and :data:`TINY` over it."""
    overlays = [ROOT / "config/presets/quick.yaml"] if tiny else []
    config = cfg.load(ROOT / "config.yaml", overlays)
    if tiny:
        config = cfg.validate(deep_update(config, TINY))
    config["seeds"] = [SEED]
    study = config["studies"][STUDY]
    study["models"] = {name: study["models"][name] for name in MODELS}
    config["data"]["mirror"] = str(mirror) if mirror else None
    return config


def prepare_data(config: dict[str, Any]) -> dict[str, str]:
    """The vdk study's prepared splits (paths relative to the work folder), made from the
    mirror where they are not there yet."""
    found = rules.data_paths(config, STUDY)
    mirror = config["data"]["mirror"]
    for split, path in found.items():
        if not Path(path).is_file():
            prepare_split(config["studies"][STUDY]["dataset"], split, path,
                          str(Path(path).with_suffix(".json")), Path(mirror) if mirror else None,
                          config["data"]["download_root"])
    return found


def environment() -> dict[str, Any]:
    found: dict[str, Any] = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "versions": versions(), "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "git_commit": os.environ.get("GPU_CHECK_COMMIT") or git_commit(ROOT),
        "cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        found.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                     gpu_memory_gib=round(props.total_memory / 2**30, 1),
                     multiprocessors=props.multi_processor_count)
    return found


def relative_error(value, reference) -> float:
    return float((value.double() - reference).abs().max() / reference.abs().max())


def fp32_errors(device) -> dict[str, dict[str, float]]:
    """Relative error of a float32 convolution (VDK CNNet's 64 channels, 8x8 kernel) and a
    2048² matmul against float64 on ``device``, per precision mode."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(64, 64, 32, 32, generator=g), torch.randn(64, 64, 8, 8, generator=g)
    a, b = torch.randn(2048, 2048, generator=g), torch.randn(2048, 2048, generator=g)
    x, w, a, b = (t.to(device) for t in (x, w, a, b))
    conv64 = F.conv2d(x.double(), w.double(), padding="same")
    mm64 = a.double() @ b.double()
    found = {}
    for precision in PRECISIONS:
        set_numerics(True, precision)
        found[precision] = {"conv": relative_error(F.conv2d(x, w, padding="same"), conv64),
                            "matmul": relative_error(a @ b, mm64)}
    set_numerics(True, "ieee")
    return found


def same_state(a: dict, b: dict) -> tuple[bool, float]:
    diff = max((float((a[k].double() - b[k].double()).abs().max()) for k in a), default=0.0)
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys(), diff


def determinism(config: dict[str, Any], data: dict[str, str]) -> dict[str, Any]:
    """Two 2-epoch trainings of VDK CNNet, same config and seed: identical weights and
    metrics (the clocks aside)."""
    spec = training_spec(config, STUDY, MODELS[0])
    spec["training"]["epochs"] = 2
    runs = []
    for name in ("a", "b"):
        folder = Path("determinism") / name
        train(spec, SEED, data, folder, checkpoint_seconds=3600)
        runs.append((read_weights(folder / "model.pt", "run the check again")["state_dict"],
                     read_csv(folder / "history.csv").drop(columns=["seconds", "eval_seconds"])))
    identical, diff = same_state(runs[0][0], runs[1][0])
    return {"epochs": 2, "weights_identical": identical, "weights_max_abs_diff": diff,
            "metrics_identical": runs[0][1].equals(runs[1][1]),
            "metrics": runs[0][1].to_dict("records")}


def train_model(config: dict[str, Any], data: dict[str, str], model: str, stop_at: float,
                out: Path) -> dict[str, Any]:
    """One paper-protocol training run into the results tree; on its deadline, the state
    saved and the weights of the epoch reached written for the stages."""
    study = studies.REGISTRY[STUDY]
    spec = training_spec(config, STUDY, model)
    outputs = {name: study.run_file(name, model=model, seed=SEED) for name in TRAIN_OUTPUTS}
    found: dict[str, Any] = {"epochs_asked": spec["training"]["epochs"]}
    try:
        meta = train(spec, SEED, data, outputs, stop_at=stop_at,
                     checkpoint_seconds=config["runtime"]["checkpoint_seconds"])
        history = read_csv(outputs["history"])
        found.update(complete=True, resumed_from_epoch=meta["resumed_from_epoch"])
    except Stopped as stop:
        ckpt = read_weights(stop.checkpoint, f"delete {stop.checkpoint} and run again")
        history = pd.DataFrame(ckpt["history"])
        # the stages open weights files: the model as far as it got, said so in the JSON
        write_torch(outputs["weights"], {"state_dict": ckpt["model"], "spec": spec, "seed": SEED,
                                         "epochs": stop.epoch})
        found.update(complete=False, stopped=str(stop))
    history.to_csv(out / f"history_{model}.csv", index=False)
    last = history.iloc[-1]
    seconds = history["seconds"]
    dataset = config["studies"][STUDY]["dataset"]
    shape = input_shape(config, dataset)
    found.update(
        epochs_done=int(last["epoch"]), test_acc=float(last["test_acc"]),
        train_acc=float(last["train_acc"]), train_loss=float(last["train_loss"]),
        seconds_per_epoch_median=float(seconds.median()),
        seconds_per_epoch_first=float(seconds.iloc[0]),
        eval_seconds_per_epoch_median=float(history["eval_seconds"].median()),
        train_seconds_total=float(seconds.sum()),
        forward_flops=forward_flops(spec, shape))
    # the estimate's FLOP model of the epochs done over their measured seconds: what
    # estimate.gpu_gflops must be for the estimate of this training job to come out right
    done = {**spec, "training": {**spec["training"], "epochs": int(last["epoch"])}}
    flops = run_cost(done, shape, estimate_sizes(config, dataset))
    measured = float((seconds + history["eval_seconds"]).sum())
    factors = config["estimate"]["stage_factors"]
    factor = factors.get(f"train_model/{STUDY}", factors["train_model"])
    found.update(flops=flops, achieved_tflops=flops / measured / 1e12,
                 fitted_gpu_gflops=factor * flops / measured / 1e9)
    return found


def run_stages(config: dict[str, Any], data: dict[str, str], results: Results) -> None:
    """Evaluation (with latency) and every per-run stage of the study, once per model."""
    study = studies.REGISTRY[STUDY]
    for model in MODELS:
        with step(results, "stages", f"{model}/evaluate") as record:
            metrics = evaluate(evaluation_spec(config, STUDY, model), SEED,
                               study.run_file("weights", model=model, seed=SEED), data,
                               study.run_file("train_meta", model=model, seed=SEED),
                               {n: study.run_file(n, model=model, seed=SEED)
                                for n in EVALUATE_OUTPUTS})
            record["test_accuracy"] = metrics["splits"]["test"]["accuracy"]
            cost = json.loads(Path(study.run_file("cost", model=model, seed=SEED)).read_text())
            record["latency"] = cost["latency"]
        for stage in study.stages.values():
            if stage.per_run and stage.model in (None, model):
                with step(results, "stages", f"{model}/{stage.name}"):
                    rules.call(config, study, stage, model=model, seed=SEED)


def lenet_grid(config: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The lenet CNN's vectorised grid at the configured size, clean protocol."""
    study = studies.REGISTRY["lenet"]
    written = rules.call(config, study, study.stages["grid"], model="cnn", protocol="clean")
    meta = json.loads(Path(written["grid_meta"]).read_text())
    return {"grid_meta": {k: v for k, v in meta.items() if k != "provenance"},
            "seconds_left_before": round(clock.left(), 1)}


def summary(results: dict[str, Any]) -> str:
    """The Markdown page of the run (what the note and the README quote)."""
    env = results.get("environment", {})
    lines = [f"# GPU check: {env.get('gpu', 'no GPU')} ({env.get('python')}, torch "
             f"{env.get('versions', {}).get('torch')}, CUDA {env.get('torch_cuda')}, "
             f"cuDNN {env.get('cudnn')})", ""]
    fp32 = results.get("fp32", {})
    if fp32.get("ok"):
        lines.append("fp32 relative error against float64: " + "; ".join(
            f"{mode}: conv {v['conv']:.1e}, matmul {v['matmul']:.1e}"
            for mode, v in fp32["errors"].items()))
    det = results.get("determinism", {})
    if det.get("ok"):
        lines.append(f"determinism (2 epochs twice): weights identical "
                     f"{det['weights_identical']}, metrics identical {det['metrics_identical']}")
    lines += ["", "| model | epochs | test acc | paper | s/epoch (median) | TFLOP/s | peak GPU MiB |",
              "|---|---|---|---|---|---|---|"]
    for model, rec in results.get("training", {}).items():
        if rec.get("ok"):
            lines.append(
                f"| {model} | {rec['epochs_done']}/{rec['epochs_asked']} | "
                f"{100 * rec['test_acc']:.2f} % | {PAPER['acc'].get(model, '–')} % | "
                f"{rec['seconds_per_epoch_median']:.3f} | {rec.get('achieved_tflops', 0):.1f} | "
                f"{rec.get('peak_gpu_mib', '–')} |")
        else:
            lines.append(f"| {model} | failed: {rec.get('error')} | | | | | |")
    lines += ["", "| stage | ok | seconds | peak GPU MiB | error |", "|---|---|---|---|---|"]
    for key, rec in results.get("stages", {}).items():
        lines.append(f"| {key} | {rec['ok']} | {rec['seconds']} | {rec.get('peak_gpu_mib', '–')}"
                     f" | {rec.get('error', '')} |")
    grid = results.get("lenet_grid")
    if grid:
        lines += ["", f"lenet grid (clean): ok {grid['ok']}, {grid['seconds']} s"
                  + (f", {grid.get('error')}" if not grid["ok"] else "")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the results go")
    parser.add_argument("--work", type=Path, default=ROOT / "gpu_check_work",
                        help="models, data and checkpoints (a second call resumes here)")
    parser.add_argument("--mirror", type=Path, default=ROOT.parent / "shared/datasets",
                        help="the data mirror holding cifar10-jpeg.tar.gz and SHA256SUMS")
    parser.add_argument("--budget", type=float, default=540, help="seconds for everything")
    parser.add_argument("--reserve", type=float, default=150,
                        help="seconds kept after training for the stages")
    parser.add_argument("--tiny", action="store_true", help="the quick preset's sizes (CPU mode)")
    parser.add_argument("--no-grid", action="store_true", help="leave the lenet grid out")
    args = parser.parse_args(argv)
    clock = Clock(args.budget)
    out, work = args.out.resolve(), args.work.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "gpu_check.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    set_numerics(True, "ieee")  # before any CUDA call: cuBLAS reads its workspace setting once
    results = Results(out)
    config = load_config(args.tiny, args.mirror.resolve() if args.mirror else None)
    os.chdir(work)  # the results tree's relative paths, as under Snakemake
    with step(results, "environment") as record:
        record.update(environment())
    with step(results, "data") as record:
        data = prepare_data(config)
        record["splits"] = data
    with step(results, "fp32") as record:
        record["errors"] = fp32_errors(select_device(config["device"]))
    with step(results, "determinism") as record:
        record.update(determinism(config, data))
    stop_at = clock.at(args.reserve)
    for model in TRAIN_ORDER:
        with step(results, "training", model) as record:
            record.update(train_model(config, data, model, stop_at, out))
    run_stages(config, data, results)
    if not args.no_grid:
        with step(results, "lenet_grid") as record:
            if clock.left() < 60:
                raise TimeoutError(f"left out: {clock.left():.0f} s of the budget left")
            record.update(lenet_grid(config, clock))
    results["seconds_total"] = round(args.budget - clock.left(), 1)
    results.save()
    return dict(results)


if __name__ == "__main__":
    main()
