"""``fadepth complexity``'s table: our counts beside the paper's Table I / IV rows (reports/paper/*.csv)."""
from __future__ import annotations

import csv
from pathlib import Path

PAPER_DIR = Path(__file__).resolve().parents[1] / "reports" / "paper"
PAPER_NAMES = {
    "smalldepth": "SmallDepth",
    "rn18": "RN18",
    "mobilenetv3": "MobileNetV3",
    "hqdecv2": "HQDecv2",
    "hqdec": "HQDec",
}
# fvcore handles kept with ops="conv": convolutions, linear layers, matrix products.
def paper_rows(folder: Path = PAPER_DIR) -> dict[str, dict]:
    """Paper rows by paper name: Table IV columns merged with Table I's totals (empty if missing)."""
    rows: dict[str, dict] = {}
    for fname, key in (("table04_complexity.csv", "scheme"), ("table01_complexity.csv", "method")):
        path = folder / fname
        if not path.exists():
            continue
        with path.open(newline="") as fh:
            for rec in csv.DictReader(fh):
                rows.setdefault(rec[key], {}).update({f"t{fname[5:7]}_{k}": v for k, v in rec.items()})
    return rows


def _paper_as_row(p: dict) -> dict:
    def num(key):
        v = p.get(key)
        return float(v) if v not in (None, "") else None

    params_enc, params_dec = num("t04_param_enc_m"), num("t04_param_dec_m")
    gf_enc, gf_dec = num("t04_gflops_enc"), num("t04_gflops_dec")
    params = num("t01_param_m") or (params_enc + params_dec if params_enc is not None else None)
    gflops = num("t01_gflops") or (gf_enc + gf_dec if gf_enc is not None else None)
    n = num("t04_n")
    return {"fps": num("t04_fps") or num("t01_fps"), "n_blocks": None if n is None else int(n),
            "p_enc": params_enc, "p_dec": params_dec, "p": params,
            "g_enc": gf_enc, "g_dec": gf_dec, "g": gflops,
            "m_enc": num("t04_mac_enc_m"), "m_dec": num("t04_mac_dec_m")}


def _ours_as_row(r: dict) -> dict:
    def mil(v):
        return None if v is None else v * 1e-6

    return {"fps": r.get("fps"), "n_blocks": r.get("n_blocks"),
            "p_enc": mil(r["params_enc"]), "p_dec": mil(r["params_dec"]), "p": mil(r["params"]),
            "g_enc": r["gflops_enc"], "g_dec": r["gflops_dec"], "g": r["gflops"],
            "m_enc": r["mac_enc_m"], "m_dec": r["mac_dec_m"]}


def _fps(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


_COLUMNS = [("FPS", "fps", _fps), ("N", "n_blocks", "{}"),
            ("Enc", "p_enc", "{:.2f}"), ("Dec", "p_dec", "{:.2f}"), ("Total", "p", "{:.2f}"),
            ("Enc", "g_enc", "{:.2f}"), ("Dec", "g_dec", "{:.2f}"), ("Total", "g", "{:.2f}"),
            ("Enc", "m_enc", "{:.2f}"), ("Dec", "m_dec", "{:.2f}")]


def format_table(rows: list[dict], paper: dict[str, dict] | None = None) -> str:
    """Plain-text table in Table IV's layout, each of our rows followed by the paper's where it has one."""
    paper = paper_rows() if paper is None else paper
    lines_in = []
    for r in rows:
        lines_in.append((r["name"], "ours", _ours_as_row(r)))
        pname = PAPER_NAMES.get(r["name"])
        if pname in paper:
            lines_in.append((pname, "paper", _paper_as_row(paper[pname])))
    cells = [[name, src] + [_cell(vals[key], fmt) for _, key, fmt in _COLUMNS] for name, src, vals in lines_in]
    head1 = ["", "", "", "", "Param(M)", "", "", "GFLOPs", "", "", "MAC(M)", ""]
    head2 = ["Model", "src"] + [title for title, _, _ in _COLUMNS]
    widths = [max(len(row[i]) for row in [head1, head2] + cells) for i in range(len(head2))]
    out = ["  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
           for row in [head1, head2] + cells]
    return "\n".join(out + [""] + _footer(rows)) + "\n"


def _footer(rows: list[dict]) -> list[str]:
    if not rows:
        return ["(no models)"]
    r0 = rows[0]
    fps_note = (f"FPS: ours on {r0['device']}, batch 1, median of {r0['reps']} runs after warm-up; "
                "paper: RTX 4090." if r0.get("fps") is not None else "FPS: not measured (--no-fps).")
    notes = [
        f"Input {r0['height']}x{r0['width']}, batch 1. " + fps_note,
        "Params: used by the eval forward of the deployed model (training-only heads excluded).",
        f"GFLOPs: 1e9 multiply-adds (fvcore; ops={r0['ops']}; ConvTranspose at {r0['convt']} resolution).",
        "MAC(M): eq. (1c) over conv layers, 4*(HiWiCi + KhKwCiCo/g + HoWoCo) x 1e-6. The paper's MAC column "
        "is not reproducible (its tool is unknown): compare ratios only.",
        "ptflops (aten) cross-check: " + ", ".join(
            f"{r['name']} {_fmt(r['gflops_ptflops'])} ({_pct(r['ptflops_rel_diff'])})" for r in rows)
        + " [ptflops also counts conv bias adds].",
    ]
    for r in rows:
        if r.get("fvcore_skipped"):
            notes.append(f"fvcore skipped ({r['name']}): "
                         + ", ".join(f"{op} x{n}" for op, n in r["fvcore_skipped"].items()))
        if not r.get("deployed", True):
            notes.append(f"{r['name']}: not deployed (fadepth.models.deploy unavailable): ETM/BN unfolded.")
        if r.get("params_unused"):
            notes.append(f"{r['name']}: {r['params_unused']} parameters unused at inference, not counted.")
    return notes


def _cell(v, fmt) -> str:
    if v is None:
        return "-"
    return fmt(v) if callable(fmt) else fmt.format(v)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:+.1f} %"
