"""The report's summary of the four verdict kinds (the overview's counts and its one line);
the end-to-end check against a quick run's claims.csv is in test_report.py."""

from __future__ import annotations

import pytest

from cnnrepro.report import ReportError, StudyPage, verdict_summary


def test_verdict_summary_line_says_when_nothing_was_tested():
    def page(*verdicts):
        return StudyPage("s", "t", "d", {}, [0], "", [],
                         claims=[{"verdict": v} for v in verdicts])

    untested = verdict_summary([page("not comparable"), page("not comparable")], "quick")
    assert untested["line"].startswith("No claim was tested: all 2 verdicts are not comparable")
    mixed = verdict_summary([page("not comparable", "holds", "inconclusive")], "cpu")
    assert mixed["counts"] == {"holds": 1, "does not hold": 0, "inconclusive": 1,
                               "not comparable": 1}
    assert mixed["line"].startswith("1 of 3 claims are not comparable under preset cpu")
    with pytest.raises(ReportError, match="unknown verdict"):
        verdict_summary([page("maybe")], "full")
