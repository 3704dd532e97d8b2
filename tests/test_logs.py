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


def test_a_job_stops_when_the_process_that_started_it_is_killed(tmp_path):
    # scheduler (a stand-in for Snakemake) -> job (an adapter: log_to around endless work)
    log = tmp_path / "job.log"
    job = (f"import time\nfrom cnnrepro.logs import log_to\nwith log_to({str(log)!r}):\n"
           f"    print('working', flush=True)\n    while True:\n        time.sleep(0.05)\n")
    scheduler = ("import subprocess, sys\n"
                 f"child = subprocess.Popen([sys.executable, '-c', {job!r}])\n"
                 "print(child.pid, flush=True)\nchild.wait()\n")
    # started as from a background shell: SIGINT ignored, so only the watchdog can stop it
    proc = subprocess.Popen([sys.executable, "-c", scheduler], stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    job_pid = int(proc.stdout.readline())
    for _ in range(600):  # the job has entered log_to
        if log.is_file() and "working" in log.read_text():
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(600):  # generous: the watchdog looks every 2 s
        if not _running(job_pid):
            break
        time.sleep(0.1)
    else:
        os.kill(job_pid, signal.SIGKILL)
        pytest.fail("the orphaned job kept running")
    text = log.read_text()
    assert f"the Snakemake process (pid {proc.pid}) that started this job is gone" in text
    assert "Orphaned" in text and "Traceback" in text  # raised in the main thread: cleanups ran
