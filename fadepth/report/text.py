"""Text for the report's cells: LaTeX-safe text (:func:`latex_text`), Markdown escaping, numbers with a real
minus sign and booleans as check marks (:class:`Style`).  Used by :mod:`fadepth.report.render` and
:mod:`fadepth.report.document`.
"""
from __future__ import annotations

import unicodedata
import warnings
from typing import Any

import numpy as np
import pandas as pd

MINUS = "\u2212"
CHECK, CROSS = "\u2713", "\u2717"


def boolean(value: Any) -> bool | None:
    """True / False for a boolean setting (bool, or 'true' / 'false' as the paper CSVs and configs print it)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower()
    return {"true": True, "false": False}.get(text)


class Style:
    """How numbers and text become cells: Markdown (Unicode) or LaTeX."""

    def __init__(self, latex: bool):
        self.latex = latex
        self.minus = "$-$" if latex else MINUS
        self.pm = r"$\pm$" if latex else "±"
        self.delta = r"$\Delta$" if latex else "Δ"  # never a raw Δ in LaTeX: pdflatex stops on it

    def number(self, value: float, decimals: int, signed: bool = False) -> str:
        if value is None or pd.isna(value):
            return ""
        text = f"{abs(value):.{decimals}f}"
        if value < 0 and float(text) != 0:
            return self.minus + text
        return ("+" + text) if signed and float(text) != 0 else text

    def text(self, value: Any) -> str:
        return latex_text(str(value)) if self.latex else markdown_escape(str(value))

    def setting(self, value: Any) -> str:
        """A setting cell: booleans as ✓ / ✗ (LaTeX: amssymb's checkmark, a times sign), the rest as text."""
        flag = boolean(value)
        if flag is None:
            return self.text(value)
        if self.latex:
            return r"$\checkmark$" if flag else r"$\times$"
        return CHECK if flag else CROSS

    def interval(self, low: float, high: float, decimals: int) -> str:
        return f"[{self.number(low, decimals, True)}, {self.number(high, decimals, True)}]"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (ASCII only; see :func:`latex_text` for any text)."""
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
    return "".join(specials.get(ch, ch) for ch in text).replace("--", "-{}-").replace("--", "-{}-")  # no en dash


GREEK_OK = set("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon "
               "phi chi psi omega".split())
LATIN1_TEXT = {"±": r"$\pm$", "×": r"$\times$", "·": r"$\cdot$", "µ": r"$\mu$", "°": r"\textdegree{}",
               "−": "$-$", "–": "--", "—": "---", "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\to$",
               "²": r"\textsuperscript{2}", "³": r"\textsuperscript{3}", "Δ": r"$\Delta$", CHECK: r"$\checkmark$",
               CROSS: r"$\times$"}


def latex_text(text: str, warn: bool = True) -> str:
    """Any text as pdflatex-safe LaTeX: specials escaped, Greek letters as math, other non-ASCII characters
    transliterated (accents dropped); characters with no ASCII form become '?' with a warning."""
    out, lost = [], []
    for i, ch in enumerate(text):
        if ch == "-" and i and text[i - 1] == "-":  # "--seeds" verbatim, not an en dash
            out.append("{}-")
            continue
        if ch.isascii():
            out.append(latex_escape(ch))
            continue
        if ch in LATIN1_TEXT:
            out.append(LATIN1_TEXT[ch])
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("GREEK SMALL LETTER ") and name.split()[-1].lower() in GREEK_OK:
            out.append(f"$\\{name.split()[-1].lower()}$")
            continue
        ascii_form = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        out.append(latex_escape(ascii_form) if ascii_form else "?")
        lost.append(ch)
    if lost and warn:
        warnings.warn(f"LaTeX: {text!r}: character(s) {''.join(dict.fromkeys(lost))!r} have no pdflatex form; "
                      "transliterated (accents dropped, '?' where none exists) in the .tex; the .md and .csv keep them", stacklevel=2)
    return "".join(out)


def markdown_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*_|`[]<>" else ch for ch in text)
