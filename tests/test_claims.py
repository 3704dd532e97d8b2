"""Claims: the verdict rules and the claims table builder."""

from __future__ import annotations

import pytest

from cnnrepro.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    ClaimTable,
    departing,
    numeric_verdict,
    paired_verdict,
    training_keys,
)


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
    table = ClaimTable([0, 1, 2], alpha=0.05)
    table.numeric("a", "accuracy", "paper", 72.59, [72.0, 73.0, 72.5], 2.0, "%")
    table.threshold("b", "collapses", "clean", "-", [0.1, 0.05, 0.12], 0.2)
    table.paired("c", "A beats B", "clean", [70, 71, 72], [60, 61.5, 61], unit="pp")
    table.threshold("d", "measured once", "paper", "-", [1.0], 0.5, below=False, seeds=[7],
                    depends_on=("training", "subset.test"))
    frame = table.frame().set_index("claim_id")
    # d: one seed of a value that varies with training gives no verdict
    assert frame["verdict"].tolist() == [HOLDS, HOLDS, HOLDS, INCONCLUSIVE]
    assert frame.loc["d", "reason"].startswith("n = 1")
    assert frame.loc["a", "rule"].startswith(numeric_verdict(72.59, [72.0], 2.0)[1] + "; ")
    assert "fewer than 2 seeds" in frame.loc["a", "rule"]
    assert frame.loc["c", "reproduced_mean"] == pytest.approx(30.5 / 3)  # per-seed differences
    assert frame.loc["c", "per_seed"] == "0:10;1:9.5;2:11"
    assert frame.loc["d", "per_seed"] == "7:1" and frame.loc["d", "n"] == 1
    assert [t["claim_id"] for t in table.tests] == ["c"] and table.tests[0]["n"] == 3
    table.threshold("e", "below", "clean", "-", [0.5, 0.1], 0.2)
    assert table.frame().set_index("claim_id").loc["e", "verdict"] == FAILS
    assert table.frame().set_index("claim_id").loc["d", "depends_on"] == "training;subset.test"


QUICK = {"training.epochs": "1 instead of 374", "subset.train": "1000 instead of all",
         "subset.test": "500 instead of all", "fgsm.epsilons": "[0.0] instead of [0.0, 0.3]"}


def test_departing_matches_keys_inside_and_around_the_declared_ones():
    found = departing(("training", "subset.test", "blur.paper.attempts"),
                      {**QUICK, "blur.paper": "{} instead of {}",
                       "subset.train_x": "1 instead of 2"})
    assert list(found) == ["training.epochs", "subset.test", "blur.paper"]  # declared order
    assert departing(training_keys("cnn"), {"models.cnn.options.kernel": "3 instead of 5",
                                           "models.ffnn.options.hidden": "[50] instead of [100]"}
                     ) == {"models.cnn.options.kernel": "3 instead of 5"}


def test_a_training_claim_is_not_comparable_under_departures_and_judged_without():
    claim = dict(depends_on=training_keys("vdk_cnnet") + ("subset.test",))
    quick = ClaimTable([0, 1, 2], departures=QUICK, preset="quick")
    quick.numeric("acc", "accuracy", "paper", 72.59, [72.0, 73.0, 72.5], 2.0, "%", **claim)
    row = quick.frame().iloc[0]
    assert row["verdict"] == NOT_COMPARABLE
    assert row["reason"] == ("preset quick: training.epochs 1 instead of 374; subset.train 1000 "
                             "instead of all; subset.test 500 instead of all")
    assert row["reproduced_mean"] == 72.5  # the measured value is still shown
    full = ClaimTable([0, 1, 2], departures={}, preset="full")
    full.numeric("acc", "accuracy", "paper", 72.59, [72.0, 73.0, 72.5], 2.0, "%", **claim)
    full.numeric("low", "accuracy", "paper", 72.59, [60.0, 61.0, 60.5], 2.0, "%", **claim)
    assert full.frame()["verdict"].tolist() == [HOLDS, FAILS]
    assert full.frame()["reason"].tolist() == ["", ""]
    # a departure the claim does not depend on leaves it comparable
    other = ClaimTable([0, 1, 2], departures={"fgsm.epsilons": "[0.0] instead of [0.0, 0.3]"})
    other.numeric("acc", "accuracy", "paper", 72.59, [72.0, 73.0, 72.5], 2.0, "%", **claim)
    assert other.frame()["verdict"].tolist() == [HOLDS]


def test_deterministic_claims_are_judged_at_n_1_under_every_preset():
    table = ClaimTable([0], departures=QUICK, preset="quick")
    table.numeric("params", "parameters", "paper", 799_078, [799_078], 0.5, seeds=[0],
                  deterministic=True, depends_on=("models.cnn.options",))
    table.numeric("wrong", "parameters", "paper", 799_078, [800_000], 0.5, seeds=[0],
                  deterministic=True, depends_on=("training",))
    frame = table.frame()
    assert frame["verdict"].tolist() == [HOLDS, FAILS]
    assert frame["rule"].str.contains("deterministic: judged at n = 1").all()


def test_a_chance_level_model_is_never_not_robust():
    table = ClaimTable([0, 1, 2])
    # accuracy under attack below 0.2 on every seed, but the clean model is at chance
    table.threshold("chance", "not robust", "clean", "-", [0.1, 0.1, 0.09], 0.2,
                    learned=([0.10, 0.11, 0.10], 0.3))
    table.threshold("trained", "not robust", "clean", "-", [0.05, 0.1, 0.09], 0.2,
                    learned=([0.72, 0.71, 0.73], 0.3))
    table.threshold("robust", "not robust", "clean", "-", [0.5, 0.45, 0.52], 0.2,
                    learned=([0.72, 0.71, 0.73], 0.3))
    frame = table.frame().set_index("claim_id")
    assert frame.loc["chance", "verdict"] == INCONCLUSIVE
    assert "well above chance" in frame.loc["chance", "rule"]
    assert frame.loc["trained", "verdict"] == HOLDS and frame.loc["robust", "verdict"] == FAILS
