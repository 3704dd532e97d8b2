"""Claims: a reported number or statement, what we measured, and a verdict by a stated rule.

Every study writes one table of these rows (``claims.csv``) for the report, through a
:class:`ClaimTable`. The verdict rules are functions here, each returning (verdict, rule
sentence), so the rule printed next to a verdict is the one that produced it.

Two checks come before any rule, in :meth:`ClaimTable.add`, so that a verdict says what the
run tested: a claim whose settings (``depends_on``) depart from the full configuration is
``not comparable`` (its value is still shown, with the departures as the reason), and a
claim that depends on training gets no verdict from fewer than two seeds. Deterministic
claims (counts, output sizes, formula checks) are judged at n = 1 under every preset.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .io import read_csv
from .paths import StudyFiles

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
NOT_COMPARABLE = "not comparable"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_COMPARABLE)


def verdict_counts(verdicts: Sequence[str]) -> dict[str, int]:
    """Claims per verdict, every kind in :data:`VERDICTS` order (zero included); a verdict
    outside the vocabulary is an error (a claims table from elsewhere, or damaged)."""
    unknown = set(verdicts) - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdict(s) in a claims table: {sorted(unknown)}")
    return {v: list(verdicts).count(v) for v in VERDICTS}
MIN_SEEDS = 2  # a value that depends on training needs a spread: no verdict from one seed

# The study settings every trained model depends on (keys of the study's config block);
# :func:`training_keys` adds the models' own blocks (architecture options, overrides).
TRAINING = ("training", "subset.train", "holdout_fraction", "normalize", "dataset")


def training_keys(*models: str) -> tuple[str, ...]:
    """The settings that can move anything the given models learned."""
    return TRAINING + tuple(f"models.{m}" for m in models)


def departing(depends_on: Sequence[str], departures: dict[str, str]) -> dict[str, str]:
    """The departures that touch a claim (a key equal to, inside or around one it names),
    in the order of ``depends_on`` (training first, where a claim names it first)."""
    def first(key: str) -> int | None:
        return next((i for i, d in enumerate(depends_on)
                     if key == d or key.startswith(d + ".") or d.startswith(key + ".")), None)
    found = {k: first(k) for k in departures}
    return {k: departures[k] for k in sorted((k for k in found if found[k] is not None),
                                             key=lambda k: (found[k], k))}


def departure_reason(preset: str, touched: dict[str, str]) -> str:
    """One sentence: ``"preset cpu: training.epochs 10 instead of 374; …"``."""
    where = f"preset {preset}" if preset != "full" else "settings differ from config.yaml"
    return f"{where}: " + "; ".join(f"{k} {v}" for k, v in touched.items())


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
    rule = (f"holds if |mean - paper| <= max(2 std, {abs_tol:g}); "
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


def largest_rise(values: pd.Series) -> float:
    """The largest step up between consecutive entries in index order (accuracy under an
    attack, indexed by eps: it should never rise); negative where every step falls."""
    return float(values.sort_index().diff().iloc[1:].max())


def learned_first(verdict: str, rule: str, accuracy: Sequence[float], floor: float
                  ) -> tuple[str, str]:
    """A claim about how a trained model behaves (it is not robust, it is fooled) says
    nothing about a model that learned nothing: inconclusive unless its clean accuracy
    reaches ``floor`` on every seed (a model at chance "collapses" under any attack)."""
    rule += (f"; judged only if clean accuracy >= {floor:g} on every seed (well above "
             "chance), else inconclusive")
    ok = len(accuracy) > 0 and bool((np.asarray(accuracy, float) >= floor).all())
    return (verdict if ok else INCONCLUSIVE), rule


def claim_row(claim_id: str, statement: str, protocol: str, paper_value: Any,
              values: Sequence[float], seeds: Sequence[int], verdict: str, rule: str,
              unit: str = "") -> dict[str, Any]:
    return {"claim_id": claim_id, "statement": statement, "protocol": protocol,
            "paper_value": paper_value, "unit": unit, **describe(values),
            "per_seed": ";".join(f"{s}:{v:.6g}" for s, v in zip(seeds, values)),
            "verdict": verdict, "rule": rule}


# The map sanity checks (cnnrepro.attribution): what each compares, and the rows of one
# run's table that give a seed's value (the randomisation test: every layer re-initialised).
SIMILARITY_TESTS: dict[str, tuple[str, Any]] = {
    "randomisation": ("depend on the learned weights (mean Spearman rank correlation of the maps "
                      "with the trained model's, every layer re-initialised, below {:g})",
                      lambda f: f[f["step"] == f["step"].max()]),
    "class_sensitivity": ("depend on the class explained (mean Spearman rank correlation of the "
                          "maps for the true class with those for a randomly drawn other class, "
                          "below {:g})", lambda f: f),
}


def similarity_claims(table: ClaimTable, test: str, study: str, model: str,
                      runs: Sequence[pd.DataFrame], threshold: float,
                      learned: tuple[Sequence[float], float], depends_on: Sequence[str]) -> None:
    """A map sanity check per method (``test``: a key of :data:`SIMILARITY_TESTS`; ``runs``:
    its table per seed): the mean Spearman rank correlation per seed below ``threshold``
    (Adebayo et al. 2018). Ours (no document number); judged only for a model that learned
    (a model at chance has nothing to lose). Claim ids:
    ``<study>.sanity.<test>.<method>.<model>``; a seed whose every map is constant (NaN)
    makes the claim inconclusive."""
    statement, rows = SIMILARITY_TESTS[test]
    methods = list(dict.fromkeys(runs[0]["method"])) if len(runs) else []
    for method in methods:
        found = [float(rows(f)[rows(f)["method"] == method]["spearman"].mean()) for f in runs]
        verdict, rule = threshold_verdict(found, threshold)
        if any(pd.isna(found)):
            verdict, rule = INCONCLUSIVE, rule + "; inconclusive where a map is constant"
        verdict, rule = learned_first(verdict, rule, *learned)
        table.add(f"{study}.sanity.{test}.{method}.{model}",
                  f"{model}: {method} maps {statement.format(threshold)}", "ours", "–", found,
                  verdict, rule, depends_on=depends_on)


# Each map check's threshold in a study's ``claims`` settings.
MAP_CHECKS = {"randomisation": "randomisation_similarity", "class_sensitivity": "class_similarity"}


def map_check_claims(table: ClaimTable, files: StudyFiles, study: str, model: str,
                     settings: dict[str, Any], learned: tuple[Sequence[float], float],
                     depends_on: Sequence[str], tests: Sequence[str] = tuple(MAP_CHECKS)
                     ) -> None:
    """The map sanity claims of one model (:func:`similarity_claims`), from its run files of
    each test in ``tests`` (the study's stage wrote them), each judged against its threshold
    in ``settings`` (:data:`MAP_CHECKS`)."""
    for test in tests:
        similarity_claims(table, test, study, model,
                          [read_csv(p) for p in files.by_model(test, [model])[model]],
                          settings[MAP_CHECKS[test]], learned, depends_on)


def attack_sanity_values(frame: pd.DataFrame, at: float | None = None) -> dict[str, float]:
    """One run's attack checks (:func:`cnnrepro.attacks.attack_checks`: one goal) as three
    numbers on the attack's success: its largest fall between consecutive eps under FGSM,
    the largest excess of FGSM's success over PGD's, and the share of FGSM's gain in success
    that noise of the same size reaches at eps ``at`` (default the largest; NaN where FGSM
    gains nothing: there is nothing to compare with)."""
    success = frame.pivot(index="epsilon", columns="attack", values="success").sort_index()
    top = success.index[-1] if at is None else success.index[np.isclose(success.index, at)][0]
    base, gain = success["fgsm"].iloc[0], success.loc[top, "fgsm"] - success["fgsm"].iloc[0]
    return {"rise": largest_rise(-success["fgsm"]),
            "pgd_excess": float((success["fgsm"] - success["pgd"]).max()),
            "noise_share": float((success.loc[top, "noise"] - base) / gain) if gain > 0
            else float("nan"), "top": float(top)}


ATTACK_SANITY = {
    "rise": "FGSM's success does not fall as eps grows (largest fall between consecutive eps "
            "below {tol:g})",
    "pgd_excess": "PGD is at least as strong as FGSM at every eps (FGSM's success exceeds "
                  "PGD's by less than {tol:g})",
    "noise_share": "random-sign noise of the same size is far weaker than FGSM (under {ratio:g} "
                   "of FGSM's gain in success at eps {top:.4g})"}


def attack_sanity_claims(table: ClaimTable, prefix: str, suffix: str, subject: str,
                         runs: Sequence[pd.DataFrame], settings: dict[str, Any],
                         learned: tuple[Sequence[float], float], depends_on: Sequence[str],
                         keys: Sequence[str] = tuple(ATTACK_SANITY), at: float | None = None
                         ) -> None:
    """Is the attack an attack (Carlini et al. 2019), per model and goal (``runs``: its
    checks per seed): success does not fall with eps, PGD is at least as strong as FGSM,
    noise of the same size is far weaker. Ours (no document number); judged only for a
    model that learned. Claim ids ``<prefix>.<key>.<suffix>``; ``settings`` gives
    ``sanity_tolerance`` and ``noise_ratio``."""
    values = [attack_sanity_values(frame, at) for frame in runs]
    tol, ratio = settings["sanity_tolerance"], settings["noise_ratio"]
    top = values[0]["top"] if values else float("nan")
    for key in keys:
        threshold = ratio if key == "noise_share" else tol
        found = [v[key] for v in values]
        verdict, rule = threshold_verdict(found, threshold)
        if any(pd.isna(found)):
            verdict, rule = INCONCLUSIVE, rule + "; inconclusive where FGSM gains nothing"
        verdict, rule = learned_first(verdict, rule, *learned)
        table.add(f"{prefix}.{key}.{suffix}", f"{subject}: "
                  + ATTACK_SANITY[key].format(tol=tol, ratio=ratio, top=top), "ours", "–",
                  found, verdict, rule, depends_on=depends_on)


class ClaimTable:
    """The rows of one study's claims table. Each method applies one verdict rule and
    appends one row; ``values`` are per seed (``seeds`` overrides the table's seeds for a
    claim measured once, e.g. on the grid's own seed).

    Every claim says what its value depends on: ``depends_on`` names config keys of the
    study block (``"training"``, ``"subset.test"``, ``"fgsm"``; :func:`training_keys`)
    whose departure from the full settings can move the number, and ``deterministic``
    marks a value that does not depend on training (parameter counts, output sizes,
    formula checks). ``departures`` maps the study's departing keys to a phrase
    (``"10 instead of 374"``, :func:`cnnrepro.config.departures`); ``preset`` names the
    run's preset for the reason sentence.

    :meth:`add` judges in this order: a non-deterministic claim touched by a departure is
    ``not comparable``; one measured on fewer than :data:`MIN_SEEDS` seeds is
    ``inconclusive``; otherwise the rule's verdict stands. Deterministic claims are always
    comparable and judged at n = 1. The row's ``reason`` says why a claim got no verdict.
    """

    def __init__(self, seeds: Sequence[int], alpha: float = 0.05,
                 departures: dict[str, str] | None = None, preset: str = "full"):
        self.seeds = list(seeds)
        self.alpha = alpha
        self.departures = dict(departures or {})
        self.preset = preset
        self.rows: list[dict[str, Any]] = []
        self.tests: list[dict[str, Any]] = []  # the paired t-tests behind paired claims

    def judge(self, verdict: str, rule: str, n: int, depends_on: Sequence[str],
              deterministic: bool) -> tuple[str, str, str]:
        """(verdict, rule, reason) after the comparability and seed-count checks."""
        if deterministic:
            return verdict, rule + "; deterministic: judged at n = 1 under every preset", ""
        rule += (f"; varies with training: no verdict from fewer than {MIN_SEEDS} seeds, "
                 "not comparable where the run departs from the full settings it depends on")
        touched = departing(depends_on, self.departures)
        if touched:
            return NOT_COMPARABLE, rule, departure_reason(self.preset, touched)
        if n < MIN_SEEDS and verdict != INCONCLUSIVE:
            return INCONCLUSIVE, rule, (f"n = {n}: a value that varies with training needs "
                                        f"at least {MIN_SEEDS} seeds")
        return verdict, rule, ""

    def add(self, claim_id: str, statement: str, protocol: str, paper_value: Any,
            values: Sequence[float], verdict: str, rule: str, unit: str = "",
            seeds: Sequence[int] | None = None, depends_on: Sequence[str] = (),
            deterministic: bool = False) -> None:
        verdict, rule, reason = self.judge(verdict, rule, len(values), depends_on,
                                           deterministic)
        row = claim_row(claim_id, statement, protocol, paper_value, values,
                        self.seeds if seeds is None else seeds, verdict, rule, unit)
        row["reason"] = reason
        row["depends_on"] = ";".join(depends_on)
        row["deterministic"] = deterministic
        self.rows.append(row)

    def numeric(self, claim_id: str, statement: str, protocol: str, paper: float,
                values: Sequence[float], abs_tol: float, unit: str = "", **claim: Any) -> None:
        verdict, rule = numeric_verdict(paper, values, abs_tol)
        self.add(claim_id, statement, protocol, paper, values, verdict, rule, unit, **claim)

    def untestable(self, claim_id: str, statement: str, protocol: str, paper_value: Any,
                   values: Sequence[float], rule: str, reason: str, **claim: Any) -> None:
        """A claim this run's setup cannot test (the document's number is for another
        setting that no study key names): ``not comparable``, with ``reason``."""
        self.add(claim_id, statement, protocol, paper_value, values, NOT_COMPARABLE, rule,
                 deterministic=True, **claim)
        self.rows[-1]["reason"] = reason

    def threshold(self, claim_id: str, statement: str, protocol: str, paper_value: Any,
                  values: Sequence[float], threshold: float, below: bool = True,
                  unit: str = "", learned: tuple[Sequence[float], float] | None = None,
                  **claim: Any) -> None:
        """``learned=(clean accuracy per seed, floor)``: see :func:`learned_first`."""
        verdict, rule = threshold_verdict(values, threshold, below)
        if learned is not None:
            verdict, rule = learned_first(verdict, rule, *learned)
        self.add(claim_id, statement, protocol, paper_value, values, verdict, rule, unit,
                 **claim)

    def paired(self, claim_id: str, statement: str, protocol: str, better: Sequence[float],
               worse: Sequence[float], paper_value: Any = "-", lower_is_better: bool = False,
               unit: str = "", **claim: Any) -> None:
        """'A beats B' over paired seeds; the row's values are the per-seed differences."""
        verdict, rule, result = paired_verdict(better, worse, self.alpha, lower_is_better)
        self.add(claim_id, statement, protocol, paper_value,
                 np.asarray(better, float) - np.asarray(worse, float), verdict, rule, unit,
                 **claim)
        self.tests.append({"claim_id": claim_id, **result})

    def frame(self) -> pd.DataFrame:
        """The rows, each with the table's row count (``rows_in_table``): a truncated
        file still parses, and that count is how the report tells (:func:`check_rows`)."""
        return pd.DataFrame(self.rows).assign(rows_in_table=len(self.rows))


def check_rows(frame: pd.DataFrame) -> str | None:
    """What is wrong with a claims table's row count, or None: fewer rows than its stage
    wrote (a truncated file parses as a shorter table with a consistent summary)."""
    written = set(frame.get("rows_in_table", pd.Series(dtype=float)).dropna())
    if len(written) != 1 or len(frame) != int(next(iter(written))):
        said = " or ".join(str(int(n)) for n in sorted(written)) or "no count"
        return f"holds {len(frame)} claim rows, but its stage wrote {said}: truncated or damaged"
    return None
