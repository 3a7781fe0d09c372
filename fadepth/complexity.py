"""Params, GFLOPs, MAC (eq. 1c) and FPS, split encoder / decoder, beside the paper's Table I / IV.

Conventions (batch 1, one image of ``height x width``; pose networks take two stacked frames, 6 channels):

* **What is counted.** The *deployed* model (``fadepth.models.deploy``: ETM branches and BatchNorm folded
  into single convs).  If ``fadepth.models.deploy`` cannot be imported, the model itself is counted and
  the row says ``deployed: False``.
* **Params** are the parameters the eval forward actually uses (those that receive a gradient from the
  outputs), so training-only heads (HQDec rec heads, APX adapters) are excluded; ``params_unused``
  reports what was left out.  Units: parameters (not millions).  BN folding turns a conv+BN pair's
  2*Co BN parameters into Co conv biases (RN18: 4.8 k fewer than the undeployed model).
* **GFLOPs** are 1e9 *multiply-adds* (the paper's "GFLOPs" are MACs, thop convention), counted by
  fvcore ``FlopCountAnalysis`` per submodule (``.by_module()``).  ``ops="conv"`` (default) counts
  convolutions, transposed convolutions, linear layers and matrix products only (design decision 14);
  ``ops="all"`` keeps fvcore's handles for norms, upsampling and pooling too.
* **ConvTranspose.** ``convt="output"`` (default) counts a transposed conv at *output* resolution,
  Ho*Wo*Ci*Co/g*Kh*Kw (the old thop convention; HQDec only matches Table I this way); ``convt="input"``
  counts it at input resolution (fvcore's and ptflops' own convention).
* **Cross-check.** ptflops (``aten`` backend: conv / mm / bmm, plus one add per output element for a
  conv bias, which fvcore does not count) gives ``gflops_ptflops`` and ``ptflops_rel_diff``.
* **MAC** is eq. (1c) summed over conv layers: 4*(Hi*Wi*Ci + Kh*Kw*Ci*Co/g + Ho*Wo*Co), i.e. float32
  bytes moved, reported in millions.  The paper's MAC column is *not* reproducible (its tool is
  unknown); compare ratios only.
* Library noise (fvcore "Unsupported operator" warnings, tracer warnings, ptflops prints) is silenced
  and summarised once per model in ``fvcore_skipped``.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import statistics
import time
import warnings
from collections import Counter
from functools import partial

import torch
from torch import nn

_MATMUL_OPS = {"aten::_convolution", "aten::addmm", "aten::bmm", "aten::einsum", "aten::matmul",
               "aten::mm", "aten::linear"}
# Classes counted as one block for Table IV's "N" column.
BLOCK_CLASSES = {"BasicBlock", "Bottleneck", "InvertedResidual", "DoubleScaleSparseResidual"}
PARTS = ("encoder", "decoder")


# ----------------------------------------------------------------------------- helpers

@contextlib.contextmanager
def _quiet():
    """Silence warnings, the fvcore / ptflops loggers and stdout / stderr; yields the captured text."""
    buf = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("fvcore", "ptflops")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def deployed(model: nn.Module) -> tuple[nn.Module, bool]:
    """``(inference copy with ETM / BN folded, True)``, or ``(plain copy, False)`` without ``deploy``."""
    try:
        from fadepth.models.deploy import deploy
    except ImportError:
        return copy.deepcopy(model).eval(), False
    return deploy(model).eval(), True


def has_split(model: nn.Module) -> bool:
    return all(isinstance(getattr(model, part, None), nn.Module) for part in PARTS)


def _part_of(name: str) -> str | None:
    head = name.split(".", 1)[0]
    return head if head in PARTS else None


def _split(values: dict[str, float], split: bool) -> dict[str, float | None]:
    """Sum per-name values into encoder / decoder / total (enc, dec = None without a split)."""
    out = {"enc": 0, "dec": 0, "total": sum(values.values())}
    for name, v in values.items():
        part = _part_of(name)
        if part:
            out[part[:3]] += v
    if not split:
        out["enc"] = out["dec"] = None
    return out


def count_blocks(model: nn.Module) -> int | None:
    """Table IV's "N": residual blocks in the encoder (BasicBlock, bneck, DSR), None if none found."""
    root = getattr(model, "encoder", model)
    n = sum(type(m).__name__ in BLOCK_CLASSES for m in root.modules())
    return n or getattr(model, "num_blocks", None)


def _example(in_channels: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(1, in_channels, height, width)


def _float_leaves(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj] if obj.is_floating_point() else []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _float_leaves(item)]
    return []


# ----------------------------------------------------------------------------- counters

def used_parameters(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """``{name: numel}`` of the parameters that the outputs of ``model(x)`` depend on (one backward)."""
    net = copy.deepcopy(model)
    params = dict(net.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    with torch.enable_grad():
        outs = [t for t in _float_leaves(net(x)) if t.requires_grad]
        if outs:
            sum(t.float().sum() for t in outs).backward()
    used = {n: p.numel() for n, p in params.items() if p.grad is not None}
    return used if outs else {n: p.numel() for n, p in params.items()}


def conv_mac_eq1c(conv: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Eq. (1c) for one conv: 4*(Hi*Wi*Ci + Kh*Kw*Ci*Co/g + Ho*Wo*Co) (float32 bytes; batch x activations)."""
    k = 1
    for s in conv.kernel_size:
        k *= s
    ci, co, g = conv.in_channels, conv.out_channels, conv.groups
    return 4 * (x[0].numel() * x.shape[0] + k * ci * co // g + y[0].numel() * y.shape[0])


def eq1c_mac(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """``{conv module name: eq. (1c) MAC}`` over Conv / ConvTranspose layers, by forward hooks."""
    found: dict[str, int] = {}

    def hook(name, module, inputs, output):
        found[name] = found.get(name, 0) + conv_mac_eq1c(module, inputs[0], output)

    handles = [m.register_forward_hook(partial(hook, n))
               for n, m in model.named_modules() if isinstance(m, nn.modules.conv._ConvNd)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return found


def _fvcore_conv(inputs, outputs, convt: str) -> int:
    """fvcore handle for aten::_convolution with the ConvTranspose convention ``convt``."""
    from fvcore.nn.jit_handles import conv_flop_count, get_shape

    transposed = bool(inputs[6].toIValue())
    at_input = transposed and convt == "input"
    return conv_flop_count(get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0]),
                           transposed=at_input)


def fvcore_macs(model: nn.Module, x: torch.Tensor, convt: str = "output",
                ops: str = "conv") -> tuple[Counter, Counter]:
    """``(multiply-adds by module name, skipped ops)`` from fvcore; '' is the whole model."""
    with _quiet():
        from fvcore.nn import FlopCountAnalysis
        from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

        fa = FlopCountAnalysis(model, (x,))
        fa.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        if ops == "conv":  # an op with a handle is counted even if "ignored": drop the handles first
            fa.clear_op_handles()
            fa.set_op_handle(**{op: (h if op in _MATMUL_OPS else None) for op, h in _DEFAULT_SUPPORTED_OPS.items()})
        fa.set_op_handle("aten::_convolution", partial(_fvcore_conv, convt=convt))
        by_module = Counter(fa.by_module())
        skipped = Counter(fa.unsupported_ops())
    return by_module, skipped


def ptflops_macs(model: nn.Module, x: torch.Tensor, convt: str = "output") -> int | None:
    """Total multiply-adds from ptflops' ``aten`` backend (None if ptflops fails); prints nothing."""
    hooks = {}
    if convt == "output":
        from ptflops.aten_ops import conv_flop_count

        def conv_at_output(args, outs):
            return conv_flop_count(args[0].shape, args[1].shape, outs[0].shape, transposed=False,
                                   bias=args[2] is not None)

        hooks = {torch.ops.aten.convolution: conv_at_output, torch.ops.aten._convolution: conv_at_output}
    with _quiet() as buf:
        from ptflops import get_model_complexity_info

        macs, _ = get_model_complexity_info(
            copy.deepcopy(model), tuple(x.shape[1:]), print_per_layer_stat=False, as_strings=False,
            input_constructor=lambda _res: x.clone(), ost=buf, backend="aten",
            custom_modules_hooks=hooks)
    return None if macs is None else int(macs)


def count_complexity(model: nn.Module, height: int, width: int, in_channels: int = 3,
                     convt: str = "output", ops: str = "conv") -> dict:
    """Params, GFLOPs (fvcore, ptflops) and eq. (1c) MAC of the deployed ``model``, split enc / dec."""
    if convt not in ("output", "input") or ops not in ("conv", "all"):
        raise ValueError(f"convt must be 'output' or 'input' and ops 'conv' or 'all', got {convt!r}, {ops!r}")
    net, is_deployed = deployed(model)
    split = has_split(net)
    x = _example(in_channels, height, width)
    used = used_parameters(net, x)
    params = _split(used, split)
    by_module, skipped = fvcore_macs(net, x, convt, ops)
    flops = {"": by_module[""]}
    if split:
        flops = {part: by_module[part] for part in PARTS} | {"other": by_module[""] - sum(
            by_module[part] for part in PARTS)}
    gflops = _split(flops, split)
    mac = _split(eq1c_mac(net, x), split)
    pt = ptflops_macs(net, x, convt)
    total = gflops["total"]
    return {
        "params_enc": _scale(params["enc"], 1), "params_dec": _scale(params["dec"], 1),
        "params": int(params["total"]),
        "params_unused": sum(p.numel() for p in net.parameters()) - int(params["total"]),
        "gflops_enc": _scale(gflops["enc"], 1e-9), "gflops_dec": _scale(gflops["dec"], 1e-9),
        "gflops": total * 1e-9, "gflops_ptflops": _scale(pt, 1e-9),
        "ptflops_rel_diff": None if not pt or not total else (pt - total) / total,
        "mac_enc_m": _scale(mac["enc"], 1e-6), "mac_dec_m": _scale(mac["dec"], 1e-6),
        "mac_m": mac["total"] * 1e-6,
        "fvcore_skipped": dict(sorted(skipped.items())),
        "deployed": is_deployed, "convt": convt, "ops": ops,
    }


def _scale(v, factor):
    return None if v is None else v * factor


# ----------------------------------------------------------------------------- speed

def measure_fps(model: nn.Module, height: int, width: int, device="auto", warmup: int = 10,
                reps: int = 50, in_channels: int = 3, deploy: bool = True) -> float:
    """Frames per second: eval, deployed, no_grad, batch 1, warm-up, CUDA sync, median of ``reps``."""
    from fadepth.utils import resolve_device

    device = resolve_device(device)
    net = deployed(model)[0] if deploy else model.eval()
    net = net.to(device)
    x = _example(in_channels, height, width).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.no_grad():
        for _ in range(warmup):
            net(x)
        sync()
        for _ in range(max(1, reps)):
            t0 = time.perf_counter()
            net(x)
            sync()
            times.append(time.perf_counter() - t0)
    return 1.0 / statistics.median(times)


# ----------------------------------------------------------------------------- rows and table

def complexity_rows(names, height: int, width: int, device="auto", fps: bool = True, reps: int = 50,
                    warmup: int = 10, convt: str = "output", ops: str = "conv", progress: bool = False) -> list[dict]:
    """One dict per registered model name (see the module docstring for units and conventions);
    `progress`: a tqdm bar over the models on stderr, saying which step (counting, timing FPS) runs."""
    from tqdm import tqdm

    from fadepth.models import create, entry
    from fadepth.utils import resolve_device

    dev = resolve_device(device)
    rows = []
    bar = tqdm(names, desc="complexity", unit="model", disable=not progress, dynamic_ncols=True, leave=False)
    for name in bar:
        kind = entry(name).kind
        in_channels = 6 if kind == "pose" else 3
        bar.set_postfix_str(f"{name}: counting")
        model = create(name).eval()
        row = {"name": name, "kind": kind, "n_blocks": count_blocks(model)}
        row |= count_complexity(model, height, width, in_channels, convt, ops)
        row["fps"] = None
        if fps:
            bar.set_postfix_str(f"{name}: measuring FPS ({reps} runs)")
            row["fps"] = measure_fps(deployed(model)[0], height, width, dev, warmup, reps,
                                     in_channels, deploy=False)
        row |= {"device": str(dev), "height": height, "width": width, "reps": reps if fps else 0}
        rows.append(row)
    return rows

