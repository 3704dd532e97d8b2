"""./repro run: config files checked first, preset and overlays after one --configfile,
a stale lock spotted; the script itself with an absolute CNNREPRO_VENV."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from bad_overlays import YAML_LEVEL, params
from conftest import MIRROR, ROOT

from cnnrepro import launch, locks
from cnnrepro.configfile import ConfigFileError, read_config_file
from cnnrepro.launch import compose
from cnnrepro.locks import stale_lock


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working copy of the project (the repro script and pyproject.toml copied, the
    rest linked), as ./repro runs: in the project folder."""
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("repro", "pyproject.toml"):
        shutil.copy2(ROOT / name, clone / name)
    for name in ("Snakefile", "config.yaml", "config", "workflow", "src", "report", "profiles"):
        (clone / name).symlink_to(ROOT / name)
    monkeypatch.chdir(clone)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # this machine's GPUs change no argument
    return clone


def test_preset_and_overlays_go_after_one_configfile_flag(project):
    args, files, _ = compose(["--preset", "quick", "mine.yaml", "more.yml", "-n"])
    assert args == ["-n", "--cores", "all", "--configfile", "config/presets/quick.yaml",
                    "mine.yaml", "more.yml"]
    assert files == [Path("config/presets/quick.yaml"), Path("mine.yaml"), Path("more.yml")]


def test_several_configfile_flags_are_merged_preset_first(project):
    args, *_ = compose(["--configfile", "a.yaml", "--cores", "2", "--configfile=b.yaml",
                       "--preset=cpu", "target.txt"])
    assert args == ["--cores", "2", "target.txt", "--configfile", "config/presets/cpu.yaml",
                    "a.yaml", "b.yaml"]


@pytest.mark.parametrize("given", [["-c4"], ["--jobs", "3"], ["--profile", "profiles/slurm"],
                                   ["--executor=slurm"]])
def test_cores_all_only_when_nothing_says_how_to_run(project, given):
    args, *_ = compose(given)
    assert "all" not in args


@pytest.mark.parametrize("visible,gpus", [("0,1", 2), ("3", 1), ("", 0), ("0,-1,1", 1)])
def test_a_local_run_may_use_as_many_gpus_at_once_as_cuda_sees(project, monkeypatch,
                                                                 visible, gpus):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    args, *_ = compose(["-n"])
    assert args == ["-n", "--cores", "all"] + (["--resources", f"gpu={gpus}"] if gpus else [])
    for given in (["--profile", "profiles/slurm"], ["--executor", "slurm"],
                  ["--resources", "gpu=1", "mem_mb=4000"]):  # a cluster's, or the user's own
        assert compose(given)[0].count("--resources") == given.count("--resources")


def test_without_cuda_visible_devices_nvidia_smi_counts_the_gpus(project, monkeypatch,
                                                                 tmp_path):
    fake = tmp_path / "bin" / "nvidia-smi"  # a machine with three GPUs
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nfor i in 0 1 2; do echo \"GPU $i: NVIDIA H100 (UUID: x)\"; done\n")
    fake.chmod(0o755)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    assert launch.visible_gpus() == 3
    assert compose([])[0][-2:] == ["--resources", "gpu=3"]


def test_gpu_jobs_at_once_each_take_their_own_device(tmp_path):
    """Three processes on a faked 2-GPU machine: the first two get devices 0 and 1 while
    they hold them; the third waits, then gets the device the first gave back."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom cnnrepro.locks import gpu_slot\n"
            "print(gpu_slot(2, Path(sys.argv[1]), poll=0.05), flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n")
    first = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "1.5"],
                             stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "0"
    second = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), "4"],
                              stdout=subprocess.PIPE, text=True)
    assert second.stdout.readline().strip() == "1"
    third = subprocess.run([sys.executable, "-c", code, str(tmp_path), "0"],
                           capture_output=True, text=True, timeout=60)
    assert third.stdout.strip() == "0"  # after the first exited
    for proc in (first, second):
        proc.wait(timeout=60)


def test_the_device_of_a_job_on_a_faked_2_gpu_machine(monkeypatch, tmp_path):
    import torch

    from cnnrepro import runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(locks, "GPU_LOCKS", tmp_path)
    monkeypatch.setattr(locks, "_GPU_HELD", {tmp_path: (1, None)})  # another job holds 0
    monkeypatch.setattr(runtime, "gpu_slot", lambda count: locks.gpu_slot(count, tmp_path))
    assert runtime.select_device("auto") == torch.device("cuda", 1)
    assert runtime.select_device("cuda") == torch.device("cuda", 1)  # the same, asked again
    assert runtime.select_device("cuda:0") == torch.device("cuda", 0)


def test_unknown_or_repeated_preset_is_one_sentence(project):
    with pytest.raises(ConfigFileError, match=r"'quik': no such preset; the presets are cpu, "
                                              r"document, quick"):
        compose(["--preset", "quik"])
    with pytest.raises(ConfigFileError, match="--preset given twice"):
        compose(["--preset", "cpu", "--preset", "quick"])


def test_study_adds_an_overlay_that_enables_only_the_named_studies(project):
    args, files, studies = compose(["--preset", "document", "--study", "concepts,lenet", "-n"])
    path, overlay = launch.selection(studies)
    assert files == [Path("config/presets/document.yaml"), path]
    assert args[-2:] == ["config/presets/document.yaml", str(path)]
    assert path.name == "study-lenet+concepts.yaml"  # in config.yaml's order
    enabled = {s for s, block in overlay["studies"].items() if block["enabled"]}
    assert enabled == {"lenet", "concepts"} and set(overlay["studies"]) == set(
        launch.study_names())
    launch.write_selection(path, overlay)
    assert read_config_file(path) == overlay
    with pytest.raises(ConfigFileError, match="--study caltek: no such study; the studies are "
                                              "vdk, mnist, lenet, caltech, concepts"):
        compose(["--study", "caltek"])
    with pytest.raises(ConfigFileError, match="--study needs a study's name"):
        compose(["--study", "-n"])


def _lock(workdir: Path, owner: dict | None) -> None:
    folder = workdir / locks.LOCKS
    folder.mkdir(parents=True)
    (folder / "0.input.lock").write_text("results/x\n")
    if owner is not None:
        (workdir / locks.OWNER).write_text(json.dumps(owner))


def test_a_lock_whose_owner_is_gone_is_stale(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _lock(tmp_path, {"pid": gone.pid, "host": socket.gethostname(), "start": None})
    message = stale_lock(tmp_path)
    assert f"pid {gone.pid}" in message and "./repro run --unlock" in message


def test_a_live_unknown_or_remote_owner_is_left_alone(tmp_path):
    locks.record_owner(tmp_path)  # this process: alive
    (tmp_path / locks.LOCKS / "0.output.lock").write_text("results/x\n")
    assert stale_lock(tmp_path) is None
    owner = json.loads((tmp_path / locks.OWNER).read_text())
    (tmp_path / locks.OWNER).write_text(json.dumps({**owner, "host": "another-node"}))
    assert stale_lock(tmp_path) is None  # a shared folder locked from elsewhere: cannot tell
    (tmp_path / locks.OWNER).unlink()
    assert stale_lock(tmp_path) is None
    shutil.rmtree(tmp_path / locks.LOCKS)
    assert stale_lock(tmp_path) is None


# --------------------------------------------------------------------------- the script


def repro(project: Path, *args: str) -> subprocess.CompletedProcess:
    """./repro with an absolute CNNREPRO_VENV holding this interpreter (no install)."""
    venv = project.parent / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    digest = hashlib.sha256((project / "pyproject.toml").read_bytes()).hexdigest()
    (venv / ".cnnrepro-pyproject.sha256").write_text(digest + "\n")
    env = {**os.environ, "CNNREPRO_VENV": str(venv), "CNNREPRO_DATA_MIRROR": str(MIRROR),
           "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(["./repro", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600)


def test_repro_refuses_to_build_the_environment_on_a_full_disk(project, tmp_path):
    # pip would stop half-way through torch with "No space left on device" (CI, stop 45)
    venv = tmp_path / "fresh-venv"
    env = {**os.environ, "CNNREPRO_VENV": str(venv), "CNNREPRO_VENV_GIB": "100000000"}
    proc = subprocess.run(["./repro", "lint"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert f"repro: creating {venv} needs about 100000000 GiB free on the disk of" in proc.stderr
    assert not venv.exists()


@pytest.mark.parametrize("text, expect", params(YAML_LEVEL))
def test_repro_names_file_and_line_of_a_bad_config_file_before_snakemake(project, text, expect):
    # Snakemake reads --configfile itself and names neither file nor line: ./repro reads first
    (project / "mine.yaml").write_text(text)
    proc = repro(project, "run", "--preset", "quick", "mine.yaml", "-n")
    assert proc.returncode != 0
    assert proc.stderr.startswith("repro: " + expect.format(file="mine.yaml")), proc.stderr
    assert not (project / ".snakemake").exists(), "Snakemake must not have started"


def test_repro_names_a_missing_preset_and_overlay(project):
    proc = repro(project, "run", "--preset", "quik")
    assert proc.returncode != 0 and "no such preset; the presets are cpu, document, quick" in proc.stderr
    proc = repro(project, "run", "--preset", "quick", "absent.yaml")
    assert proc.returncode != 0 and "repro: absent.yaml: no such config file" in proc.stderr


def test_repro_runs_snakemake_with_the_preset_in_force(project, mirror):
    (project / "mine.yaml").write_text("studies:\n  vdk: {enabled: false}\n")
    proc = repro(project, "run", "--preset", "quick", "mine.yaml", "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "repro: config.yaml + config/presets/quick.yaml + mine.yaml" in proc.stderr
    assert ("cnnrepro: settings from config.yaml + config/presets/quick.yaml + mine.yaml: "
            "preset 'quick'") in proc.stderr
    assert "data from the offline mirror" in proc.stderr
    assert not (project / "results").exists()  # a dry run


def test_repro_stops_at_a_stale_lock_and_says_how_to_clear_it(project):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _lock(project, {"pid": gone.pid, "host": socket.gethostname(), "start": None})
    proc = repro(project, "run", "--preset", "quick")
    assert proc.returncode != 0 and "./repro run --unlock" in proc.stderr
    assert "Snakemake" in proc.stderr and not (project / "results").exists()
