"""fadepth.complexity and `fadepth complexity` on tiny hand-made models with analytic counts."""
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fadepth import complexity as cx
from fadepth import complexity_table as ct
from fadepth.cli import complexity as cli
from fadepth.models import registry

H, W = 10, 12
REQUIRED = {"name", "params_enc", "params_dec", "params", "gflops_enc", "gflops_dec", "gflops",
            "gflops_ptflops", "mac_enc_m", "mac_dec_m", "fps", "device", "height", "width"}


class Enc(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)  # 8*3*9 + 8 = 224 params; H*W*8*27 MACs

    def forward(self, x):
        return [self.conv(x)]


class Dec(nn.Module):
    def __init__(self, convt: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(8, 4, 3, padding=1, groups=2, bias=False)  # 4*4*9 = 144 params
        self.up = nn.ConvTranspose2d(4, 2, 2, stride=2, bias=False) if convt else None  # 4*2*4 = 32
        self.unused_head = nn.Conv2d(4, 3, 1)  # training-only: never called at inference

    def forward(self, feats):
        y = self.conv(feats[-1])
        if self.up is not None:
            y = self.up(y)
        return [torch.sigmoid(y)]


class Tiny(nn.Module):
    def __init__(self, convt: bool = False):
        super().__init__()
        self.encoder, self.decoder = Enc(), Dec(convt)

    def forward(self, x):
        enc = self.encoder(x)
        dec = self.decoder(enc)
        return {"disp": dec, "enc": enc, "dec": dec}


class Noisy(nn.Module):
    """40 calls of an op fvcore has no handle for."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        for _ in range(40):
            x = F.pixel_shuffle(F.pixel_unshuffle(self.conv(x), 2), 2)
        return x


def test_single_conv_against_analytic():
    conv = nn.Conv2d(4, 8, 3, padding=1, groups=2)
    x = torch.rand(1, 4, H, W)
    macs = H * W * 8 * (4 // 2) * 9
    by_module, _ = cx.fvcore_macs(conv, x)
    assert by_module[""] == macs
    assert cx.ptflops_macs(conv, x) == macs + 8 * H * W  # ptflops adds one per output element (bias)
    assert cx.conv_mac_eq1c(conv, x, conv(x)) == 4 * (H * W * 4 + 9 * 4 * 8 // 2 + H * W * 8)
    assert sum(cx.used_parameters(conv, x).values()) == 8 * 2 * 9 + 8


def test_encoder_decoder_split():
    c = cx.count_complexity(Tiny(), H, W)
    assert (c["params_enc"], c["params_dec"], c["params"]) == (224, 144, 368)
    assert c["params_unused"] == 4 * 3 + 3  # the never-called head is excluded from params
    assert c["gflops_enc"] * 1e9 == pytest.approx(H * W * 8 * 27)
    assert c["gflops_dec"] * 1e9 == pytest.approx(H * W * 4 * 4 * 9)
    assert c["gflops"] == pytest.approx(c["gflops_enc"] + c["gflops_dec"])
    assert c["mac_enc_m"] == pytest.approx(4 * (H * W * 3 + 27 * 8 + H * W * 8) * 1e-6)
    assert c["mac_dec_m"] == pytest.approx(4 * (H * W * 8 + 9 * 8 * 4 // 2 + H * W * 4) * 1e-6)
    assert abs(c["ptflops_rel_diff"]) < 0.1


def test_no_split_reports_totals_only():
    c = cx.count_complexity(nn.Sequential(nn.Conv2d(6, 4, 1)), H, W, in_channels=6)
    assert c["params_enc"] is None and c["gflops_dec"] is None and c["mac_enc_m"] is None
    assert c["params"] == 28 and c["gflops"] * 1e9 == pytest.approx(H * W * 24)


def test_convtranspose_conventions():
    per_input_px = 4 * 2 * 2 * 2  # Ci * Co * Kh * Kw
    dec_conv = H * W * 4 * 4 * 9
    out = cx.count_complexity(Tiny(convt=True), H, W, convt="output")
    inp = cx.count_complexity(Tiny(convt=True), H, W, convt="input")
    assert inp["gflops_dec"] * 1e9 == pytest.approx(dec_conv + H * W * per_input_px)
    assert out["gflops_dec"] * 1e9 == pytest.approx(dec_conv + 4 * H * W * per_input_px)
    for c in (out, inp):
        assert c["gflops_ptflops"] * 1e9 == pytest.approx(c["gflops"] * 1e9 + 8 * H * W)  # encoder conv bias


def test_noise_is_summarised(capsys, caplog):
    c = cx.count_complexity(Noisy(), H, W)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    assert not [r for r in caplog.records if "nsupported" in r.getMessage()]
    assert c["fvcore_skipped"].get("aten::pixel_shuffle") == 40
    row = dict(c, name="noisy", n_blocks=None, fps=None, device="cpu", height=H, width=W, reps=0)
    text = ct.format_table([row])
    assert text.count("pixel_shuffle") == 1 and "x40" in text


def test_measure_fps_positive():
    assert cx.measure_fps(Tiny(), H, W, device="cpu", warmup=1, reps=3) > 0


@pytest.fixture
def tiny_registered(monkeypatch):
    registry.available()  # load the real models first, so the fake entry is added last
    monkeypatch.setitem(registry._REGISTRY, "_tiny", registry.ModelEntry("_tiny", "depth", Tiny, "test"))
    return "_tiny"


def _cli(argv):
    return cli.main(argv)


def test_cli_writes_json(tiny_registered, tmp_path, capsys):
    out = tmp_path / "c.json"
    argv = ["--models", tiny_registered, "--height", str(H), "--width", str(W), "--json", str(out),
            "--device", "cpu", "--reps", "2", "--warmup", "1"]
    assert _cli(argv) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 1 and REQUIRED <= set(rows[0])
    assert rows[0]["name"] == "_tiny" and rows[0]["fps"] > 0 and rows[0]["params"] == 368
    assert "Param(M)" in capsys.readouterr().out


def test_cli_unknown_model(capsys):
    assert _cli(["--models", "smalldepth,nope", "--no-fps"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "known models" in err


def test_cli_help_is_cheap_and_helpful(capsys):
    with pytest.raises(SystemExit):
        _cli(["--help"])
    text = capsys.readouterr().out
    assert "--models" in text and "multiply-adds" in text and "eq. (1c)" in text


def test_paper_tables_are_exact_copies():
    ours = Path(ct.PAPER_DIR)
    shared = Path("/work/shared/paper/tables")
    if not shared.exists():
        pytest.skip("shared paper tables not mounted")
    for name in ("table01_complexity.csv", "table04_complexity.csv"):
        assert (ours / name).read_bytes() == (shared / name).read_bytes()
    assert ct.paper_rows()["SmallDepth"]["t04_n"] == "6"


def test_registry_models_small_resolution():
    names = [n for n in ("smalldepth", "rn18", "mobilenetv3") if n in registry.available()]
    if not names:
        pytest.skip("real models not registered yet")
    rows = cx.complexity_rows(names, 64, 128, device="cpu", fps=False)
    for r in rows:
        assert REQUIRED <= set(r)
        assert r["params_enc"] > r["params_dec"] > 0
        assert abs(r["ptflops_rel_diff"]) < 0.05
    assert "SmallDepth" in ct.format_table(rows) or "smalldepth" not in names
