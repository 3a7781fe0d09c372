"""``report.tex``: one LaTeX document with every table and figure built into the output folder.

Each build records what it wrote in ``manifest.json`` (one entry per spec), so building the tables one at a
time still yields one document.  Tables are ``\\input`` as written by the Styler; figures are included as
PDF.  The document opens on the first table (the MLflow store, relative, is a footnote), and the first table
of each entry carries the paper's number (``\thetable`` = V for Table V; its others V.2, V.3).  The document needs only booktabs, longtable, graphicx, amssymb and geometry (all in
texlive-latex-base / -recommended) and compiles with pdflatex.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jinja2

from fadepth.report.text import latex_text

MANIFEST = "manifest.json"

TEMPLATE = r"""\documentclass[10pt]{article}
\usepackage[T1]{fontenc}
\usepackage[utf8]{inputenc}
\usepackage[landscape,margin=1cm]{geometry}
\usepackage{booktabs}
\usepackage{longtable}
\usepackage{graphicx}
\usepackage{amsmath}
\usepackage{amssymb}
\setlength{\tabcolsep}{3pt}
\newcounter{plaintables}
\makeatletter
\g@addto@macro\@floatboxreset{\scriptsize}% tables in floats: small type (floats reset the font size)
\makeatother
\begin{document}
<% for entry in entries %>
<% if not loop.first %>
\clearpage
<% endif %>
<% if entry.number %>
\setcounter{table}{0}% the paper's number for the first table of an entry, then V.2, V.3, ...: all distinct
\renewcommand{\thetable}{<< entry.number >>\ifnum\value{table}>1 .\arabic{table}\fi}
<% else %>
\setcounter{table}{\value{plaintables}}% tables without a paper number: 1, 2, ... across the document
\renewcommand{\thetable}{\arabic{table}}
<% endif %>
\section*{<< entry.heading >><% if loop.first %>\footnotemark<% endif %>}
<% if loop.first %>
\footnotetext{Our numbers are read from the MLflow store \texttt{<< store >>} (reports/build.py); the paper's from
FA-Depth's tables. Ours: mean $\pm$ half-width of the 95\,\% Student-t interval over seeds.}
<% endif %>
{\scriptsize
\input{<< entry.table >>}
}
<% for figure in entry.figures %>
\begin{figure}[htbp]
\centering
\includegraphics[width=0.8\linewidth,height=0.6\textheight,keepaspectratio]{<< figure.file >>}
\caption{<< figure.caption >>}
\end{figure}
<% endfor %>
<% if not entry.number %>
\setcounter{plaintables}{\value{table}}
<% endif %>
<% endfor %>
\end{document}
"""


@dataclass
class ManifestEntry:
    name: str
    heading: str  # LaTeX-ready
    order: str  # sort key: the paper table's file name (table01 ... table10), else the spec name
    table: str  # file name of the table's .tex, relative to the output folder
    profile: str | None = None
    number: str = ""  # the paper's table number (roman), printed as LaTeX's table number
    figures: list[dict[str, str]] = field(default_factory=list)  # {"file": relative pdf, "caption": LaTeX}


def table_number(title: str) -> str:
    """'Table V: ...' -> 'V' ('' when the title does not start with a paper table number)."""
    match = re.match(r"^\s*Table\s+([IVXLC]+)\b", title or "")
    return match.group(1) if match else ""


def entry_for(spec, profile: str | None, table_file: Path, figures, out_dir: Path) -> ManifestEntry:
    heading = latex_text(spec.title or spec.name)
    return ManifestEntry(
        name=spec.name, heading=heading, order=spec.paper_table or spec.name, table=table_file.name,
        profile=profile, number=table_number(spec.title),
        figures=[{"file": f.pdf.relative_to(out_dir).as_posix(), "caption": f.caption} for f in figures],
    )


def read_manifest(out_dir: Path) -> dict[str, ManifestEntry]:
    path = out_dir / MANIFEST
    if not path.is_file():
        return {}
    return {name: ManifestEntry(**entry) for name, entry in json.loads(path.read_text()).items()}


def update_manifest(out_dir: Path, entry: ManifestEntry) -> dict[str, ManifestEntry]:
    entries = read_manifest(out_dir)
    entries[entry.name] = entry
    entries = {name: e for name, e in entries.items() if (out_dir / e.table).is_file()}
    (out_dir / MANIFEST).write_text(json.dumps({n: asdict(e) for n, e in entries.items()}, indent=2) + "\n")
    return entries


def render_document(entries: dict[str, ManifestEntry], store: str) -> str:
    env = jinja2.Environment(block_start_string="<%", block_end_string="%>", variable_start_string="<<",
                             variable_end_string=">>", comment_start_string="<#", comment_end_string="#>",
                             autoescape=False, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    ordered = sorted(entries.values(), key=lambda e: e.order)
    return env.from_string(TEMPLATE).render(entries=ordered, store=latex_text(shown_store(store)))


def shown_store(store: str) -> str:
    """The store as the document prints it: no absolute path (``runs/mlflow.db`` relative to the working
    directory, else the file's name); a server URL as it is."""
    if not store.startswith("sqlite:///"):
        return store if "://" in store else Path(store).name
    path = Path(store[len("sqlite:///"):])
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.name


def write_document(out_dir: Path, entry: ManifestEntry, store: str) -> Path:
    """Record ``entry`` in the manifest and rewrite ``report.tex`` with every table built so far."""
    entries = update_manifest(out_dir, entry)
    path = out_dir / "report.tex"
    path.write_text(render_document(entries, store))
    return path
