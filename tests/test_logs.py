"""A job's log: Python and C-level output land in its file, failures with a traceback."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnrepro.logs import log_to


def test_python_and_file_descriptor_output_go_to_the_log(tmp_path, capfd):
    log = tmp_path / "job.log"
    with log_to(log):
        print("from print")
        os.write(2, b"from the C level\n")
        logging.getLogger("cnnrepro.test").info("from logging")
    text = log.read_text()
    assert "from print" in text and "from the C level" in text and "from logging" in text
    print("after")  # the streams are restored
    assert "after" in capfd.readouterr().out
    assert sys.stdout is not None and "after" not in log.read_text()


def test_a_failure_is_logged_with_its_traceback_and_raised(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(ZeroDivisionError):
        with log_to(log):
            1 / 0
    text = log.read_text()
    assert "job failed" in text and "ZeroDivisionError" in text and "Traceback" in text


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _job_under(tmp_path: Path, scheduler_body: str) -> tuple[subprocess.Popen, int, Path]:
    """A stand-in Snakemake (``scheduler_body`` starts ``JOB``, an adapter: log_to around
    endless work); returns it, the job's pid and the job's log once the job is working."""
    log = tmp_path / "job.log"
    job = (f"import time\nfrom cnnrepro.logs import log_to\nwith log_to({str(log)!r}):\n"
           f"    print('working', flush=True)\n    while True:\n        time.sleep(0.05)\n")
    scheduler = f"import os, subprocess, sys\nJOB = {job!r}\n" + scheduler_body
    # started as from a background shell: SIGINT ignored, so only the watchdog can stop it
    proc = subprocess.Popen([sys.executable, "-c", scheduler], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    job_pid = int(proc.stdout.readline())
    for _ in range(600):
        if log.is_file() and "working" in log.read_text():
            break
        time.sleep(0.1)
    return proc, job_pid, log


def _stops(job_pid: int) -> bool:
    for _ in range(600):  # generous: the watchdog looks every 2 s
        if not _running(job_pid):
            return True
        time.sleep(0.1)
    os.kill(job_pid, signal.SIGKILL)
    return False


def test_a_job_stops_when_the_process_that_started_it_is_killed(tmp_path):
    proc, job_pid, log = _job_under(tmp_path, (
        "child = subprocess.Popen([sys.executable, '-c', JOB])\n"
        "print(child.pid, flush=True)\nchild.wait()\n"))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _stops(job_pid), "the orphaned job kept running"
    text = log.read_text()
    assert f"the Snakemake process that started this job is gone (parent pid {proc.pid})" in text
    assert "Orphaned" in text and "Traceback" in text  # raised in the main thread: cleanups ran


def test_a_job_behind_a_shell_stops_when_its_snakemake_is_killed(tmp_path):
    # as with conda: Snakemake -> shell -> job; the shell outlives Snakemake
    proc, job_pid, log = _job_under(tmp_path, (
        "from cnnrepro.locks import mark_scheduler\nmark_scheduler()\n"
        "shell = subprocess.Popen(['sh', '-c', f'{sys.executable} -c \"$JOB\" & echo $!; wait'],"
        " env={**os.environ, 'JOB': JOB}, stdout=subprocess.PIPE, text=True)\n"
        "print(shell.stdout.readline().strip(), flush=True)\nshell.wait()\n"))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _stops(job_pid), "the job behind the shell kept running"
    assert "Orphaned" in log.read_text()
