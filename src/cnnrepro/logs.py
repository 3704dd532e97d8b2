"""Send a Snakemake job's output to its log file (the first act of every adapter)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def log_to(path: str | os.PathLike | None) -> Iterator[None]:
    """Redirect stdout, stderr (file descriptors too, for C-level messages) and ``logging``
    to ``path``; tracebacks of failures land there as well, then re-raise."""
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
