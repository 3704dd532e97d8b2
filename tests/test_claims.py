"""Claims: the verdict rules and the claims table builder."""

from __future__ import annotations

import pytest

from cnnrepro.claims import FAILS, HOLDS, INCONCLUSIVE, numeric_verdict, paired_verdict


def test_verdict_rules():
    assert numeric_verdict(72.59, [72.0, 73.0, 72.5], 2.0)[0] == HOLDS
    assert numeric_verdict(72.59, [60.0, 61.0, 60.5], 2.0)[0] == FAILS
    # the mnist time ratios of a contended run: any value "within 2 std" is no evidence
    assert numeric_verdict(1.77, [7.94, 0.40, 12.89], 0.3)[0] == INCONCLUSIVE
    assert paired_verdict([70, 71, 72], [60, 61.5, 61], 0.05)[0] == HOLDS
    assert paired_verdict([60, 61.5, 61], [70, 71, 72], 0.05)[0] == FAILS
    assert paired_verdict([70], [60], 0.05)[0] == INCONCLUSIVE
    verdict, _, res = paired_verdict([0.2, 0.3, 0.1], [0.4, 0.5, 0.6], lower_is_better=True)
    assert verdict == HOLDS and res["n"] == 3 and res["p_greater"] < 0.05


def test_claim_table_rows_carry_the_rule_that_judged_them():
    from cnnrepro.claims import ClaimTable

    table = ClaimTable([0, 1, 2], alpha=0.05)
    table.numeric("a", "accuracy", "paper", 72.59, [72.0, 73.0, 72.5], 2.0, "%")
    table.threshold("b", "collapses", "clean", "-", [0.1, 0.05, 0.12], 0.2)
    table.paired("c", "A beats B", "clean", [70, 71, 72], [60, 61.5, 61], unit="pp")
    table.threshold("d", "measured once", "paper", "-", [1.0], 0.5, below=False, seeds=[7],
                    depends_on=("training", "subset.test"))
    frame = table.frame().set_index("claim_id")
    assert frame["verdict"].tolist() == [HOLDS, HOLDS, HOLDS, HOLDS]
    assert frame.loc["a", "rule"] == numeric_verdict(72.59, [72.0], 2.0)[1]
    assert frame.loc["c", "reproduced_mean"] == pytest.approx(30.5 / 3)  # per-seed differences
    assert frame.loc["c", "per_seed"] == "0:10;1:9.5;2:11"
    assert frame.loc["d", "per_seed"] == "7:1" and frame.loc["d", "n"] == 1
    assert [t["claim_id"] for t in table.tests] == ["c"] and table.tests[0]["n"] == 3
    table.threshold("e", "below", "clean", "-", [0.5, 0.1], 0.2)
    assert table.frame().set_index("claim_id").loc["e", "verdict"] == FAILS
    assert table.frame().set_index("claim_id").loc["d", "depends_on"] == "training;subset.test"
