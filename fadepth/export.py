"""Deployment export: the folded depth net as an ONNX or TorchScript file, and the runtimes that run it.

The exported graph is :class:`FullResolutionDisparity` around ``deploy(model)`` (ETMs folded to single convs by
eqs. 18-19, BatchNorms folded into their convs): input ``image`` (B, 3, H, W) float32 RGB in [0, 1], output
``disp`` (B, 1, H, W), the finest disparity resized bilinearly to the input size, and with ``with_depth`` a
second output ``depth`` = 1 / (10 disp + 0.01) (eq. 12, up to scale).  ONNX files use opset ``OPSET`` through
``torch.onnx.export(dynamo=True)``; TorchScript files are traced (``torch.jit.trace``) and load with plain
``torch.jit.load``, without fadepth.  Both carry a ``fadepth`` JSON record (model, size, opset, outputs,
source checkpoint digest) in the ONNX metadata / TorchScript extra files.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fadepth.errors import InputError
from fadepth.models import disp_to_depth
from fadepth.outputs import ensure_folder, remove_stale_temps, write_atomic

OPSET = 18
SIZE_MULTIPLE = 32  # five stride-2 stages in every registered encoder
FORMATS = {"onnx": (".onnx",), "torchscript": (".pt", ".ts", ".torchscript")}
METADATA_KEY = "fadepth"
TORCHSCRIPT_EXTRA = "fadepth.json"


class ExportError(InputError):
    """A bad export / runtime request: unknown format, wrong size, unreadable model file."""


@dataclass
class ExportRecord:
    """What an exported file holds (stored inside it as JSON)."""

    format: str
    model: str
    height: int
    width: int
    dynamic_batch: bool
    outputs: list[str]
    opset: int | None
    etm_folded: bool
    checkpoint_sha256: str | None = None
    fadepth_version: str = ""


class FullResolutionDisparity(nn.Module):
    """Finest disparity of a depth net at the input's resolution (+ eq. 12 depth with `with_depth`)."""

    def __init__(self, depth_net: nn.Module, with_depth: bool = False):
        super().__init__()
        self.depth_net, self.with_depth = depth_net, with_depth

    def forward(self, image: torch.Tensor):
        disp = self.depth_net(image)["disp"][0]
        if disp.shape[-2:] != image.shape[-2:]:
            disp = F.interpolate(disp, size=image.shape[-2:], mode="bilinear", align_corners=False)
        if self.with_depth:
            return disp, disp_to_depth(disp)
        return disp


def check_size(height: int, width: int) -> None:
    for name, value in (("--height", height), ("--width", width)):
        if value < SIZE_MULTIPLE or value % SIZE_MULTIPLE:
            raise ExportError(f"{name} {value}: must be a positive multiple of {SIZE_MULTIPLE} "
                              f"(the encoders downsample by 32), e.g. {max(1, round(value / 32)) * 32}")


def runs_at(module: nn.Module, height: int, width: int) -> bool:
    """Whether the deployed module runs on a (1, 3, height, width) image (SmallDepth resizes its skips, so any
    size works; the monodepth2-decoder nets need multiples of 32)."""
    try:
        with torch.no_grad():
            module(torch.zeros(1, 3, height, width))
    except (RuntimeError, ValueError):
        return False
    return True


def nearest_valid(value: int) -> int:
    """The multiple of 32 nearest `value` (ties: the larger), at least 32."""
    return max(SIZE_MULTIPLE, int(value / SIZE_MULTIPLE + 0.5) * SIZE_MULTIPLE)


def export_size(module: nn.Module, name: str, height: int, width: int) -> tuple[int, int, str]:
    """(height, width, note) for an export at the training size: that size when it is a multiple of 32 or the
    network runs at it, else the nearest multiple of 32; the note says which (empty when nothing to say)."""
    if height % SIZE_MULTIPLE == 0 and width % SIZE_MULTIPLE == 0:
        return height, width, ""
    if runs_at(module, height, width):
        return height, width, (f"exporting at the training size {height}x{width}: not a multiple of 32, but {name} "
                               "runs at it (its decoder resizes to its skip connections)")
    h, w = nearest_valid(height), nearest_valid(width)
    return h, w, (f"exporting at {h}x{w}, the multiple of 32 nearest the training size {height}x{width} "
                  f"({name} needs multiples of 32; choose another with --height/--width)")


def check_out(fmt: str, out: str | Path, overwrite: bool = False) -> Path:
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix.lower() not in FORMATS[fmt]:
        raise ExportError(f"--out {out}: a {fmt} file should end in {' or '.join(FORMATS[fmt])}")
    if out.exists() and not overwrite:
        raise ExportError(f"--out {out}: file exists (pass --overwrite to replace it)")
    return out


def deployed_module(depth_net: nn.Module, with_depth: bool = False) -> FullResolutionDisparity:
    """ETM + BN folded copy of `depth_net`, wrapped to return full-resolution disparity, on CPU, eval."""
    from fadepth.models import deploy

    return FullResolutionDisparity(deploy(depth_net).cpu().eval(), with_depth).eval()


def export_onnx(module: FullResolutionDisparity, height: int, width: int, out: str | Path,
                record: ExportRecord, dynamic_batch: bool = False, overwrite: bool = False) -> Path:
    import onnx

    example = (torch.rand(1, 3, height, width),)
    names = ["disp", "depth"] if module.with_depth else ["disp"]
    dynamic = {"image": {0: torch.export.Dim("batch", min=1, max=4096)}} if dynamic_batch else None
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, example, dynamo=True, opset_version=OPSET, input_names=["image"],
                                    output_names=names, dynamic_shapes=dynamic, verbose=False)

    def write(tmp: str) -> None:
        proto = program.model_proto
        onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(asdict(record))})
        onnx.save(proto, tmp)

    return write_atomic(out, write, overwrite)


def export_torchscript(module: FullResolutionDisparity, height: int, width: int, out: str | Path,
                       record: ExportRecord, dynamic_batch: bool = False, overwrite: bool = False) -> Path:
    example = torch.rand(2 if dynamic_batch else 1, 3, height, width)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
    extra = {TORCHSCRIPT_EXTRA: json.dumps(asdict(record))}
    with warnings.catch_warnings():  # torch.jit.save's FutureWarning: TorchScript is what this format is
        warnings.simplefilter("ignore", FutureWarning)
        return write_atomic(out, lambda tmp: torch.jit.save(traced, tmp, _extra_files=extra), overwrite)


EXPORTERS = {"onnx": export_onnx, "torchscript": export_torchscript}


def export_checkpoint(checkpoint: str | Path, fmt: str, out: str | Path, height: int | None = None,
                      width: int | None = None, dynamic_batch: bool = False, with_depth: bool = False,
                      overwrite: bool = False, say: Callable[[str], None] | None = None
                      ) -> tuple[Path, ExportRecord, float]:
    """Export a checkpoint's deployed depth net; returns (file, record, max |exported - PyTorch|).

    Without `height` / `width` the size is the training size, or the nearest one the network runs at
    (:func:`export_size`; `say` gets the one-line note).

    Everything the user passes is checked before the checkpoint is read; the written file is reloaded in
    its runtime and compared with the PyTorch deployed model on a random image.
    """
    from fadepth import __version__
    from fadepth.checkpoint import file_sha256
    from fadepth.models import load_model

    out = check_out(fmt, out, overwrite)
    if height is not None and width is not None:
        check_size(height, width)
    depth_net, cfg = load_model(checkpoint, "cpu")
    module = deployed_module(depth_net, with_depth)
    if height is None or width is None:
        height, width, note = export_size(module, cfg.model.name, cfg.data.height, cfg.data.width)
        if note and say is not None:
            say(note)
    record = ExportRecord(fmt, cfg.model.name, height, width, dynamic_batch,
                          ["disp", "depth"] if with_depth else ["disp"], OPSET if fmt == "onnx" else None,
                          cfg.model.etm.enabled, file_sha256(checkpoint), __version__)
    ensure_folder(out.parent, "--out", say or print)
    remove_stale_temps(out.parent, out.name, say)
    EXPORTERS[fmt](module, height, width, out, record, dynamic_batch, overwrite)
    return out, record, max_abs_difference(module, out, height, width)


# ------------------------------------------------------------------------------------------ runtimes
def ort_providers(device: str = "auto") -> list[str]:
    """CUDA execution provider when asked for (or `auto`) and present in this onnxruntime build, else CPU."""
    import onnxruntime as ort

    have_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device.startswith("cuda") and not have_cuda:
        raise ExportError(f"--device {device}: this onnxruntime build has no CUDAExecutionProvider "
                          "(install onnxruntime-gpu)")
    if have_cuda and device != "cpu" and (device.startswith("cuda") or torch.cuda.is_available()):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_session(path: str | Path, device: str = "auto", threads: int = 0, spinning: bool = False):
    """An ONNX Runtime session: all graph optimisations, `threads` intra-op threads (0 = cores), and
    intra-op spinning off by default (spinning threads steal the cores of whatever runs next)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=ort_providers(device))
    except ExportError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        raise ExportError(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0][:200]})") from None


def read_record(path: str | Path) -> ExportRecord | None:
    """The fadepth record stored in an exported file (None for a file fadepth did not write)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        raw = props.get(METADATA_KEY)
    else:
        extra = {TORCHSCRIPT_EXTRA: ""}
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        raw = extra[TORCHSCRIPT_EXTRA] or None
    if not raw:
        return None
    try:
        return ExportRecord(**json.loads(raw))
    except (ValueError, TypeError) as exc:  # JSONDecodeError, missing / unknown keys
        raise ExportError(f"{path}: its fadepth metadata is unreadable ({str(exc).splitlines()[0][:200]}); "
                          "export the checkpoint again with `fadepth export`") from None


def required_record(path: Path, kind: str) -> ExportRecord:
    """The fadepth record of a model file `predict --model` is to run: refused in one line without one."""
    record = read_record(path)
    if record is None:
        raise ExportError(f"{path}: not written by `fadepth export` (no fadepth metadata); export a checkpoint "
                          f"with `fadepth export --checkpoint ... --format {kind}`")
    return record


def check_io_names(path: Path, record: ExportRecord, inputs: list[str], outputs: list[str]) -> None:
    """The model's own input / output names against what its record declares (input `image`, `record.outputs`)."""
    if inputs != ["image"] or outputs != list(record.outputs):
        raise ExportError(f"{path}: its fadepth metadata declares input image and output(s) "
                          f"{', '.join(record.outputs)}, but the model has input(s) {', '.join(inputs) or 'none'} "
                          f"and output(s) {', '.join(outputs) or 'none'}; export the checkpoint again with "
                          "`fadepth export`")


class ExportedModel:
    """Run a file written by `fadepth export`: ``model(image) -> disp`` with image (B, 3, H, W) float32 in
    [0, 1] (torch).  A file without fadepth's record, or whose input / output names are not the record's, is
    refused in one line."""

    def __init__(self, path: str | Path, device: str = "auto"):
        path = Path(path)
        if not path.is_file():
            raise ExportError(f"{path}: model file not found")
        suffix = path.suffix.lower()
        if suffix not in FORMATS["onnx"] + FORMATS["torchscript"]:
            raise ExportError(f"{path}: unknown model file type {suffix!r}; expected .onnx or a TorchScript .pt/.ts")
        self.path, self.kind = path, "onnx" if suffix == ".onnx" else "torchscript"
        if self.kind == "onnx":
            self.session = ort_session(path, device)
            self.provider = self.session.get_providers()[0]
        else:
            from fadepth.utils import resolve_device

            self.device = resolve_device(device)
            try:
                self.module = torch.jit.load(str(path), map_location=self.device).eval()
            except Exception as exc:
                raise ExportError(f"{path}: not a readable TorchScript file ({str(exc).splitlines()[0][:200]})") \
                    from None
            self.provider = f"torchscript:{self.device}"
        self.record = required_record(path, self.kind)
        if self.kind == "onnx":
            check_io_names(path, self.record, [i.name for i in self.session.get_inputs()],
                           [o.name for o in self.session.get_outputs()])
        self.height, self.width = self.record.height, self.record.width

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.kind == "torchscript":
            out = self.module(image.to(self.device))
            return (out[0] if isinstance(out, (tuple, list)) else out).cpu()
        disp = self.session.run(["disp"], {"image": image.cpu().numpy()})[0]
        return torch.from_numpy(np.ascontiguousarray(disp))


@torch.no_grad()
def max_abs_difference(module: nn.Module, path: str | Path, height: int, width: int, seed: int = 0) -> float:
    """max |exported(x) - module(x)| on one random image (CPU)."""
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    ref = module(x)
    ref = ref[0] if isinstance(ref, tuple) else ref
    return float((ExportedModel(path, "cpu")(x) - ref).abs().max())
