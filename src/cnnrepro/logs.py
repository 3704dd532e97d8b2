"""Send a Snakemake job's output to its log file (the first act of every adapter), and
stop the job when the Snakemake process that started it is gone.

A local Snakemake runs each job as its child. Killed with ``kill -9`` it cannot stop
them, and an orphaned training job would go on writing its checkpoint and outputs beside
the job the next run starts. So while a job runs, a watchdog thread looks every few
seconds whether its parent changed (an orphan is re-parented to init or a subreaper) or
the Snakemake named in its environment is gone (for a job started through a shell, as
with conda: ``locks.mark_scheduler``); if so it raises :class:`Orphaned` in the main thread
(through a private signal, as SIGINT may be ignored: jobs started from a background shell
inherit that), so ``finally`` blocks and atomic writers clean up, the log says why, and
the checkpoint of the last finished epoch stays for the next run to resume from. On a
cluster a job's parent is the job-step process on its node: the job ends with its
allocation, not with the submitting Snakemake (the README says what to do there).
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

from .locks import scheduler_gone

WATCH_SECONDS = 2.0   # how often the watchdog looks at the parent
GRACE_SECONDS = 60.0  # then the job exits even if the main thread never saw the signal
STOP_SIGNAL = signal.SIGUSR1  # private to the watchdog: handled only while a job runs


class Orphaned(BaseException):
    """The job's Snakemake is gone (a BaseException: no ``except Exception`` keeps the
    job alive)."""


@contextlib.contextmanager
def stop_when_orphaned(interval: float = WATCH_SECONDS) -> Iterator[None]:
    """Raise :class:`Orphaned` in the main thread if this process's parent goes away."""

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers live in the main thread only
        return
    parent, done = os.getppid(), threading.Event()

    def stop(signum, frame):
        raise Orphaned(f"the Snakemake process that started this job is gone (parent pid "
                       f"{parent}): stopping this job (a rerun resumes from its last checkpoint)")

    def watch() -> None:
        while not done.wait(interval):
            if os.getppid() != parent or scheduler_gone():
                _thread.interrupt_main(STOP_SIGNAL)
                if not done.wait(GRACE_SECONDS):  # the main thread is stuck in C code
                    os._exit(1)
                return

    previous = signal.signal(STOP_SIGNAL, stop)
    threading.Thread(target=watch, name="orphan-watchdog", daemon=True).start()
    try:
        yield
    finally:
        done.set()
        signal.signal(STOP_SIGNAL, previous)


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Redirect stdout, stderr (file descriptors too, for C-level messages) and ``logging``
    to ``path``; tracebacks of failures land there as well, then re-raise. The job stops
    if its parent (the Snakemake that runs it) dies (:func:`stop_when_orphaned`)."""
    if path is None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as handle:
        saved = os.dup(1), os.dup(2)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        old_streams = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = handle
        logging.basicConfig(level=logging.INFO, stream=handle, force=True,
                            format="%(asctime)s %(name)s: %(message)s")
        try:
            with stop_when_orphaned():
                yield
        except BaseException:
            logging.getLogger("cnnrepro").exception("job failed")
            raise
        finally:
            sys.stdout, sys.stderr = old_streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
