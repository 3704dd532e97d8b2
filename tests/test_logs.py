"""A job's log: Python and C-level output land in its file, failures with a traceback."""

from __future__ import annotations

import logging
import os
import sys

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
