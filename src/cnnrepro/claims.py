"""Claims: a reported number or statement, what we measured, and a verdict by a stated rule.

Every study writes one table of these rows (``claims.csv``) for the report. The verdict
rules are functions here, each returning (verdict, rule sentence), so the rule printed
next to a verdict is the one that produced it.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


def describe(values: Sequence[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=float)
    return {"reproduced_mean": float(arr.mean()) if len(arr) else math.nan,
            "std": float(arr.std(ddof=1)) if len(arr) > 1 else math.nan,
            "n": int(len(arr))}


def numeric_verdict(paper: float, values: Sequence[float], abs_tol: float) -> tuple[str, str]:
    """The paper's number reproduces if it lies within mean ± max(2·std, abs_tol).

    Seeds that scatter wider than the tolerance itself (2·std > 2·abs_tol) cannot tell a
    reproduction from a failure: inconclusive, not a vacuous "holds".
    """
    d = describe(values)
    rule = (f"holds if |mean - paper| <= max(2 std, {abs_tol:g}); needs n >= 1; "
            f"inconclusive if 2 std > {2 * abs_tol:g} (seeds too scattered)")
    if d["n"] == 0:
        return INCONCLUSIVE, rule
    spread = 2 * d["std"] if d["n"] > 1 else 0.0
    if spread > 2 * abs_tol:
        return INCONCLUSIVE, rule
    return (HOLDS if abs(d["reproduced_mean"] - paper) <= max(spread, abs_tol) else FAILS), rule


def paired_verdict(better: Sequence[float], worse: Sequence[float], alpha: float = 0.05,
                   lower_is_better: bool = False) -> tuple[str, str, dict[str, float]]:
    """'A beats B' over paired seeds: a one-sided paired t-test.

    holds: the mean difference favours A and p < alpha; does not hold: it favours B with
    p < alpha (the reverse is significant); inconclusive otherwise or with n < 2.
    """
    a, b = np.asarray(better, float), np.asarray(worse, float)
    diff = (b - a) if lower_is_better else (a - b)
    rule = (f"one-sided paired t-test over seeds, alpha {alpha:g}: holds if the difference "
            f"favours the claim with p < {alpha:g}, does not hold if the reverse does; "
            f"inconclusive otherwise or with n < 2")
    result = {"mean_difference": float(diff.mean()) if len(diff) else math.nan,
              "n": int(len(diff)), "t": math.nan, "p_greater": math.nan, "p_less": math.nan}
    if len(diff) < 2:
        return INCONCLUSIVE, rule, result
    if np.allclose(diff, diff[0]):  # zero variance: the t statistic is undefined
        result["p_greater"] = 0.0 if diff[0] > 0 else 1.0
        result["p_less"] = 0.0 if diff[0] < 0 else 1.0
    else:
        test = stats.ttest_1samp(diff, 0.0)
        result["t"] = float(test.statistic)
        result["p_greater"] = float(stats.ttest_1samp(diff, 0.0, alternative="greater").pvalue)
        result["p_less"] = float(stats.ttest_1samp(diff, 0.0, alternative="less").pvalue)
    if result["p_greater"] < alpha:
        return HOLDS, rule, result
    if result["p_less"] < alpha:
        return FAILS, rule, result
    return INCONCLUSIVE, rule, result


def threshold_verdict(values: Sequence[float], threshold: float, below: bool = True
                      ) -> tuple[str, str]:
    """A statement like 'accuracy collapses': holds if every seed is beyond the threshold."""
    arr = np.asarray(values, float)
    side = "below" if below else "above"
    rule = f"holds if every seed is {side} {threshold:g}"
    if len(arr) == 0:
        return INCONCLUSIVE, rule
    ok = (arr < threshold) if below else (arr > threshold)
    return (HOLDS if ok.all() else FAILS), rule


def claim_row(claim_id: str, statement: str, protocol: str, paper_value: Any,
              values: Sequence[float], seeds: Sequence[int], verdict: str, rule: str,
              unit: str = "") -> dict[str, Any]:
    return {"claim_id": claim_id, "statement": statement, "protocol": protocol,
            "paper_value": paper_value, "unit": unit, **describe(values),
            "per_seed": ";".join(f"{s}:{v:.6g}" for s, v in zip(seeds, values)),
            "verdict": verdict, "rule": rule}
