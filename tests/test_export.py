"""Export: ONNX Runtime and TorchScript give the PyTorch deployed model's output; the CLI refuses bad input."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from fadepth.cli import main
from fadepth.config import SyntheticConfig
from fadepth.data.synthetic import SyntheticScenes
from fadepth.export import ExportRecord, FullResolutionDisparity, deployed_module, export_onnx, export_torchscript, \
    ort_session
from fadepth.models import create

MODELS = {"smalldepth": {}, "smalldepth_etm": {"etm": True}, "rn18": {}, "mobilenetv3": {}}
SIZES = [(128, 416), (192, 640)]


def trained_looking(name: str) -> nn.Module:
    """A registered model with non-trivial BatchNorm statistics, so the folds are exercised."""
    torch.manual_seed(0)
    model = create(name.removesuffix("_etm"), **MODELS[name])
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def street_image(height: int, width: int) -> torch.Tensor:
    """A rendered synthetic street frame (road, buildings, sky): a real-looking input."""
    scenes = SyntheticScenes(SyntheticConfig(test_sequences=1, frames_per_sequence=2), height, width, "test")
    return torch.from_numpy(scenes.render(0, 1).image).permute(2, 0, 1)[None].float()


def record(fmt: str, height: int, width: int) -> ExportRecord:
    return ExportRecord(fmt, "test", height, width, False, ["disp"], 18, False)


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_runtime_matches_pytorch_deployed(name, tmp_path):
    module = deployed_module(trained_looking(name))
    for height, width in SIZES:
        path = export_onnx(module, height, width, tmp_path / f"{name}_{height}.onnx", record("onnx", height, width))
        session = ort_session(path, "cpu", threads=2)
        for x in (torch.rand(1, 3, height, width), street_image(height, width)):
            with torch.no_grad():
                ref = module(x)
            assert ref.shape == (1, 1, height, width)  # full-resolution disparity
            got = session.run(["disp"], {"image": x.numpy()})[0]
            assert np.abs(got - ref.numpy()).max() < 1e-4, (name, height, width)


def test_onnx_dynamic_batch_and_depth_output(tmp_path):
    module = FullResolutionDisparity(deployed_module(trained_looking("smalldepth")).depth_net, with_depth=True)
    path = export_onnx(module, 64, 192, tmp_path / "d.onnx", record("onnx", 64, 192), dynamic_batch=True)
    session = ort_session(path, "cpu", threads=2)
    assert [o.name for o in session.get_outputs()] == ["disp", "depth"]
    x = torch.rand(3, 3, 64, 192)
    disp, depth = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        ref_disp, ref_depth = module(x)
    assert disp.shape == (3, 1, 64, 192)
    assert np.abs(disp - ref_disp.numpy()).max() < 1e-4
    np.testing.assert_allclose(depth, 1.0 / (10.0 * disp + 0.01), rtol=1e-5)  # eq. 12
    np.testing.assert_allclose(depth, ref_depth.numpy(), rtol=1e-4)


LOAD_WITHOUT_FADEPTH = """
import sys, torch
model = torch.jit.load(sys.argv[1])
x = torch.load(sys.argv[2])
with torch.no_grad():
    torch.save(model(x), sys.argv[3])
assert not any(m == "fadepth" or m.startswith("fadepth.") for m in sys.modules), "fadepth was imported"
"""


def test_torchscript_reloads_in_a_fresh_process_without_fadepth(tmp_path):
    module = deployed_module(trained_looking("smalldepth_etm"))
    path = export_torchscript(module, 128, 416, tmp_path / "sd.pt", record("torchscript", 128, 416))
    x = street_image(128, 416)
    torch.save(x, tmp_path / "x.pt")
    # -I: isolated mode, no PYTHONPATH, no user site, no current directory on sys.path
    subprocess.run([sys.executable, "-I", "-c", LOAD_WITHOUT_FADEPTH, str(path), str(tmp_path / "x.pt"),
                    str(tmp_path / "y.pt")], check=True, cwd=tmp_path)
    with torch.no_grad():
        ref = module(x)
    assert (torch.load(tmp_path / "y.pt") - ref).abs().max() < 1e-5


# ----------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from fadepth.config import load_config
    from fadepth.train import Trainer

    out = tmp_path_factory.mktemp("ckpt")
    cfg = load_config(overrides=["data.height=64", "data.width=192", f"train.out_dir={out}", "train.progress=false"])
    trainer = Trainer(cfg)
    with torch.no_grad():  # non-trivial BN statistics, as after training
        for m in trainer.depth_net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
    return trainer.save()


def test_predict_with_onnx_writes_the_checkpoint_paths_depth_maps(checkpoint, tmp_path, capsys):
    from PIL import Image

    frames = tmp_path / "frames"
    frames.mkdir()
    for i, (h, w) in enumerate([(75, 250), (64, 192)]):  # one frame at another size: resized in and out
        rgb = (street_image(64, 192)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(rgb).resize((w, h)).save(frames / f"{i:03d}.png")
    onnx_file = tmp_path / "smalldepth.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(onnx_file)]) == 0
    assert "opset 18" in capsys.readouterr().out
    assert main(["predict", "--model", str(onnx_file), str(frames), "--out", str(tmp_path / "ort")]) == 0
    assert main(["predict", "--checkpoint", str(checkpoint), str(frames), "--out", str(tmp_path / "pt")]) == 0
    for i in range(2):
        ort_depth = np.load(tmp_path / "ort" / f"{i:03d}_depth.npy")
        pt_depth = np.load(tmp_path / "pt" / f"{i:03d}_depth.npy")
        assert ort_depth.shape == pt_depth.shape == ((75, 250), (64, 192))[i]
        np.testing.assert_allclose(ort_depth, pt_depth, rtol=1e-4)
        png = [np.asarray(Image.open(tmp_path / d / f"{i:03d}_disp.png")).astype(int) for d in ("ort", "pt")]
        assert (png[0] != png[1]).any(axis=-1).mean() < 1e-3  # a colormap bin boundary at most, rarely


def _one_line_error(argv, capsys, expect):
    assert main(argv) == 2
    captured = capsys.readouterr()
    text = (captured.err + captured.out).strip()
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    assert expect in text, text


def test_export_bad_input_gets_one_clear_line(checkpoint, tmp_path, capsys):
    base = ["export", "--format", "onnx"]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "exists.onnx").write_bytes(b"")
    cases = [
        (["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "a.onnx")], "not found"),
        (["--checkpoint", str(tmp_path / "junk.pt"), "--out", str(tmp_path / "a.onnx")], "not a readable checkpoint"),
        (["--checkpoint", str(checkpoint), "--out", str(tmp_path / "a.onnx"), "--height", "100", "--width", "192"],
         "--height 100: must be a positive multiple of 32"),
        (["--checkpoint", str(checkpoint), "--out", str(tmp_path / "a.pt")], "should end in .onnx"),
        (["--checkpoint", str(checkpoint), "--out", str(tmp_path / "exists.onnx")], "file exists"),
        (["--checkpoint", str(checkpoint), "--out", str(tmp_path / "a.onnx"), "--height", "64"], "--width"),
    ]
    for extra, expect in cases:
        _one_line_error(base + extra, capsys, expect)
    assert not (tmp_path / "a.onnx").exists() and not list(tmp_path.glob(".*"))


def test_predict_model_bad_input_gets_one_clear_line(tmp_path, capsys):
    Image.new("RGB", (64, 32)).save(tmp_path / "img.png")  # a good image: only the model file is bad
    (tmp_path / "junk.onnx").write_bytes(b"garbage")
    (tmp_path / "model.txt").write_text("x")
    for model, expect in [("missing.onnx", "model file not found"), ("junk.onnx", "not a readable ONNX model"),
                          ("model.txt", "unknown model file type")]:
        _one_line_error(["predict", "--model", str(tmp_path / model), str(tmp_path / "img.png"), "--out",
                         str(tmp_path / "o")], capsys, expect)
