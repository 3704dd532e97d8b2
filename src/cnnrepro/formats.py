"""How the report writes a number and a text: one format for every number shown
(``mean ± std (n)``), and text made inert for LaTeX and for Snakemake's reStructuredText."""

from __future__ import annotations

import math
from typing import Any


def fmt_value(value: Any, digits: int = 4) -> str:
    """A number at ``digits`` significant digits in plain notation (a whole number whole:
    a count of 799078 is not 7.991e+05); scientific only below 1e-3 or from 1e6."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if not isinstance(value, float):
        return str(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if not math.isfinite(value) or not 1e-3 <= abs(value) < 1e6:
        return f"{value:.{digits}g}"
    return f"{value:.{max(0, digits - 1 - math.floor(math.log10(abs(value))))}f}"


def mean_std_n(mean: float, std: float, n: int, unit: str = "", digits: int = 4) -> str:
    """The report's one number format: ``mean ± std (n)``; std is ``–`` for a single seed.
    With a spread, the std has two significant digits and the mean as many decimals (the
    digits beyond the spread carry no information); without one, ``digits`` digits."""
    unit = f" {unit}" if unit and unit != "%" else unit
    if isinstance(std, (int, float)) and math.isfinite(std) and std > 0 and math.isfinite(mean):
        decimals = max(0, 1 - math.floor(math.log10(std)))
        if decimals <= 8:
            return f"{mean:.{decimals}f} ± {std:.{decimals}f}{unit} (n={int(n)})"
    return f"{fmt_value(mean, digits)} ± {fmt_value(std, digits)}{unit} (n={int(n)})"


LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                 "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                 "\\": r"\textbackslash{}", "±": r"$\pm$", "²": r"$^2$", "…": r"\ldots{}",
                 "→": r"$\to$", "×": r"$\times$", "–": "--", "≤": r"$\le$", "≥": r"$\ge$",
                 # the concepts study's formulas (pdflatex knows none of these)
                 "·": r"$\cdot$", "−": "-", "′": "'", "¹": r"$^1$", "₀": r"$_0$", "ₓ": r"$_x$",
                 "ε": r"$\varepsilon$", "Σ": r"$\Sigma$", "∂": r"$\partial$", "∇": r"$\nabla$",
                 "≈": r"$\approx$", "≠": r"$\neq$", "⌊": r"$\lfloor$", "⌋": r"$\rfloor$"}


def latex_escape(text: Any) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def rst_text(text: Any) -> str:
    """``text`` as inert reStructuredText for Snakemake's report (which runs docutils with
    ``raw`` and ``include`` enabled): one line, every character but letters, digits and
    spaces backslash-escaped, so that no markup, role, directive or link can form."""
    return "".join(ch if ch.isalnum() or ch == " " else "\\" + ch
                   for ch in " ".join(str(text).split()))
