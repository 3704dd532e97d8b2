"""One writer per output: a run's claim and a training folder's lock are held by the
kernel, refuse a second writer naming the first, and outlive Snakemake deleting its own
lock folder (two real concurrent Snakemake runs, one ending while the other works)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cnnrepro import locks
from cnnrepro.locks import Busy, claim_outputs, exclusive
from cnnrepro.train import WRITER_LOCK, train


@pytest.fixture(autouse=True)
def release_claims():
    """Claims made in this process are held until it exits; a test lets its own go."""
    yield
    while locks._HELD:
        locks._HELD.pop().close()


def _holder(tmp_path: Path, code: str) -> subprocess.Popen:
    """A process that runs ``code`` (which takes a lock), says so, and waits for stdin."""
    script = (f"import sys\nfrom cnnrepro import locks\n{code}\n"
              "print('held', flush=True)\nsys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, locks.COMMAND_ENV: "./repro run the-first-run"})
    assert proc.stdout.readline().strip() == "held"
    return proc


def _end(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_a_live_claim_refuses_a_run_that_would_write_or_read_its_files(tmp_path):
    first = _holder(tmp_path, "locks.claim_outputs(['results/a.csv'], ['data/x.npz'])")
    try:
        with pytest.raises(Busy) as err:
            claim_outputs(["results/b.csv", "./results/a.csv"], [], tmp_path)
        message = str(err.value)
        assert f"pid {first.pid}" in message and "./repro run the-first-run" in message
        assert "results/a.csv" in message and f"kill {first.pid}" in message
        with pytest.raises(Busy):  # reading what the other writes
            claim_outputs(["results/c.csv"], ["results/a.csv"], tmp_path)
        with pytest.raises(Busy):  # writing what the other reads
            claim_outputs(["data/x.npz"], [], tmp_path)
        mine = claim_outputs(["results/b.csv"], ["data/x.npz"], tmp_path)  # both only read x
        assert json.loads(mine.read_text())["outputs"] == ["results/b.csv"]
    finally:
        _end(first)
    claim_outputs(["results/a.csv"], [], tmp_path)  # its owner exited: the kernel let go
    owners = {json.loads(p.read_text())["pid"] for p in (tmp_path / locks.WRITERS).glob("*.json")}
    assert owners == {os.getpid()}  # the dead run's record is gone


def test_a_training_folder_has_one_writer(tmp_path):
    folder = tmp_path / "results" / "mnist" / "cnn" / "seed0"
    first = _holder(tmp_path, f"held = locks.exclusive({str(folder / WRITER_LOCK)!r}, 'x')\n"
                           "held.__enter__()")
    try:
        with pytest.raises(Busy, match=f"training folder {folder}.*pid {first.pid}"):
            train({}, 0, {}, folder)  # refused before it reads a spec or any data
    finally:
        _end(first)
    with exclusive(folder / WRITER_LOCK, "the folder"):
        assert json.loads((folder / WRITER_LOCK).read_text())["pid"] == os.getpid()


SNAKEFILE = """
from cnnrepro import locks

onstart:
    locks.claim_run(workflow)

rule long:
    output: "long.txt"
    shell: "while [ ! -e release ]; do sleep 0.2; done; echo long > {output}"

rule short:
    output: "short.txt"
    shell: "echo short > {output}"
"""


def _snakemake(workdir: Path, target: str, **kwargs):
    args = [sys.executable, "-m", "snakemake", "--cores", "1", target]
    return subprocess.Popen(args, cwd=workdir, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kwargs)


def test_concurrent_runs_never_write_one_output(tmp_path):
    (tmp_path / "Snakefile").write_text(textwrap.dedent(SNAKEFILE))
    long_run = _snakemake(tmp_path, "long.txt")
    deadline = time.monotonic() + 120
    while not list((tmp_path / locks.WRITERS).glob("*.json")):
        assert long_run.poll() is None and time.monotonic() < deadline, long_run.stdout.read()
        time.sleep(0.2)
    try:
        short = _snakemake(tmp_path, "short.txt")
        out = short.communicate(timeout=120)[0]
        assert short.returncode == 0, out  # other files: it runs, and ends (unlocking)
        third = _snakemake(tmp_path, "long.txt")
        out = third.communicate(timeout=120)[0]
        assert third.returncode != 0, out
        assert f"pid {long_run.pid}" in out and "long.txt" in out
        assert "rule long:" not in out  # refused before any job
    finally:
        (tmp_path / "release").touch()
        long_run.communicate(timeout=120)
    assert long_run.returncode == 0 and (tmp_path / "long.txt").read_text() == "long\n"
