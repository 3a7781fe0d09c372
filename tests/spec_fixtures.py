"""Tiny sweep specs for runner tests: the smoke profile shrunk to one 32x96 iteration on a one-sequence set."""
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE_BASE = REPO / "ablations" / "base" / "smoke.yaml"
TINY_SMOKE = ("{data.height: 32, data.width: 96, train.iterations: 1, train.batch_size: 2, eval.max_images: 2, "
              "data.synthetic.train_sequences: 1, data.synthetic.test_sequences: 1, "
              "data.synthetic.frames_per_sequence: 6}")


def write_tiny_spec(path: Path, name: str, schemes: list[str], seeds: str = "[0, 1]", header: str = "",
                    footer: str = "") -> Path:
    """A spec at ``path`` with a tiny `smoke` profile; ``schemes`` are YAML flow entries, one per scheme;
    ``header`` goes after ``base:`` (e.g. ``baseline: a``), ``footer`` after the schemes."""
    lines = [f"name: {name}", f"base: {SMOKE_BASE}", *filter(None, header.splitlines()), f"seeds: {seeds}",
             "profiles:", f"  smoke: {{overrides: {TINY_SMOKE}}}", "  paper: {}", "schemes:",
             *(f"  - {s}" for s in schemes), *filter(None, textwrap.dedent(footer).splitlines())]
    path.write_text("\n".join(lines) + "\n")
    return path
