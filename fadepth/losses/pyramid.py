"""Pyramid loss L_py (Sec. III-C, eqs. 20-22).

    L_py = alpha_cr L_cr + sum_k [alpha_k L_k + beta_k phi_k(d_cr, d^_k) + gamma_k phi_k(f_cr, f^_k)]   (20)

k in {lr, hr, flip, color}.  Every level runs the full L_cr recipe (eq. 21, ``CrLoss``) on its own inputs:

* lr / hr: all frames resized to ``size``, or ``scale`` x cr in both axes (``level_size``: snapped to the
  coarsest of the 32 / 16 / 8 / ... pixel grids that stays within ``snap_tolerance`` of the exact scale in both
  axes, as the paper's 96x320 / 160x512 are 0.75x / 1.25x of 128x416 on the 32 grid; never finer than the depth
  net's ``size_multiple``, the one grid an architecture needs: decisions row 33), K by
  ``fadepth.geometry.resize_intrinsics`` (per axis: the pixel-centre rule of the align_corners=False resize);
* flip: all frames mirrored, K mirrored (cx -> W-1-cx); CrLoss re-predicts the poses from the mirrored frames;
* color: one ColorJitter draw per snippet of the *clean* frames, shared by its frames; L_color's photometric
  error sees the jittered images (the one place where the loss compares jittered images).

Network input and loss images: with data-level ColorJitter the batch carries clean ``images`` and jittered
``net_images`` (monodepth2's color / color_aug).  cr, lr, hr and flip feed ``net_images`` (resized or mirrored
alike) to the networks and compute L_k on the clean frames; the color level uses its own jitter for both.

Consistency (eq. 22): d = every disparity scale, f = the decoder stages at those scales (X_dec^0..3), each
phi averaged over its list.  The level's maps are first brought to cr's geometry (bilinear resize to cr's
map sizes; flip back).
``phi="prob"``: ``phi_kind="sym_kl"`` (default) = 1/2 [KL(a||b) + KL(b||a)], or ``"sym_ce"`` =
-1/2 [sum psi(a) log psi(b) + sum psi(b) log psi(a)] (eq. 22 as printed, with the sign that makes it a loss).
sym_ce = sym_kl + the mean entropy 1/2 [H(psi(a)) + H(psi(b))], so its minimum over b is *not* at b = a: with
a fixed (cr detached, per-level mode) it sharpens b (measured: b moves by 0.07 on disparity-like maps and its
spread doubles).  A consistency loss must be minimal, with zero gradient, at b = a; ``CONSISTENCY_PHI_KINDS``
lists the kinds that are (sym_kl, l1), and sym_ce is kept only to reproduce the printed formula.
psi is a softmax along H and, separately, along W, per channel; each is summed over its axis and averaged
over the others, and the two axes are averaged (the APX convention of eq. 28c).  ``phi="l1"`` = mean |a-b|.

``use_cr`` (Table VIII a4/a6), our reading: the level's *network input* is resized, its outputs are resized
back to cr's map sizes, and L_k is computed at cr's resolution on the cr images and K.  Without it (a3/a5,
the default) L_k is computed at the level's own resolution.  ``use_cr`` affects lr and hr only.

Update modes (the gradient-accumulation paragraph of Sec. III-C; Table X "^" schemes):

* ``sum``: returns the summed loss; the caller calls ``backward()``.  Gradient = grad of eq. 20.
* ``per_level``: for each level in turn (cr first) forward, its terms, ``backward()``, free the graph; the
  returned total is detached and ``backward_done=True``.  d_cr / f_cr are stored *detached* for the later
  phi terms, so the accumulated gradient is exactly

      grad_per_level = grad[ eq. 20 with d_cr, f_cr replaced by stop_gradient(d_cr), stop_gradient(f_cr) ]
                     = grad_sum - sum_k [beta_k dphi_k/dd_cr . dd_cr/dtheta + gamma_k dphi_k/df_cr . df_cr/dtheta]

  i.e. the phi terms pull only the level's maps towards cr, never cr towards the level.  ``sum`` mode with
  ``detach_cr=True`` gives the same gradient.  ``exact_cr_gradient=True`` keeps cr's graph alive until the
  last level and back-propagates the phi gradients accumulated on d_cr / f_cr through it, which reproduces
  ``sum`` mode's gradient exactly at the cost of holding cr's graph (peak ~ 2 levels instead of 1).
  Random draws (ColorJitter, drop layers, automask noise) happen in the same order in both modes, and BN
  running statistics see the same forwards, so with equal seeds both modes see identical inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import Tensor, nn
from torchvision.transforms import ColorJitter

from fadepth.config import PyramidConfig, PyramidLevelConfig
from fadepth.geometry import flip_intrinsics, resize_intrinsics

LEVELS = ("lr", "hr", "flip", "color")
PHI_KINDS = ("sym_kl", "sym_ce", "l1")
CONSISTENCY_PHI_KINDS = ("sym_kl", "l1")  # minimal, with zero gradient, at b = a (sym_ce is not: entropy)
CONSISTENCY_KEYS = ("disp", "dec")  # d and f of eq. 20
DEFAULT_JITTER = (0.2, 0.2, 0.2, 0.1)  # brightness, contrast, saturation, hue (monodepth2 values)

CrExtra = Callable[[dict], "tuple[Tensor, dict[str, float]]"]


class LevelView(NamedTuple):
    net: nn.Module  # the depth net (wrapped under use_cr)
    images: Tensor  # (B,F,3,h,w) the frames L_k compares
    K: Tensor
    to_cr: Callable[[dict, dict], dict]  # the level's outputs -> cr's geometry
    net_images: Tensor | None = None  # what the networks see (None = ``images``)


@dataclass
class PyramidOutput:
    total: Tensor  # live summed loss (sum mode) or its detached value (per_level mode)
    terms: dict[str, Tensor]  # detached 0-dim tensors on the device
    outputs: dict  # the cr level's depth-net outputs (detached in per_level mode)
    backward_done: bool = False
    level_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)


# ------------------------------------------------------------------------------------ phi (eq. 22)
def axis_log_softmaxes(x: Tensor) -> tuple[Tensor, Tensor]:
    """log psi_h and log psi_w: log-softmax along H and along W of every (batch, channel) map."""
    return F.log_softmax(x, dim=-2), F.log_softmax(x, dim=-1)


def _axis_reduce(per_pixel: Tensor, dim: int) -> Tensor:
    """Sum over the softmax axis, mean over every other axis (resolution-independent)."""
    return per_pixel.sum(dim=dim).mean()


def cross_entropy_axes(log_p: Sequence[Tensor], log_q: Sequence[Tensor]) -> Tensor:
    """-sum p log q per axis (h, w), averaged over the two axes."""
    terms = [_axis_reduce(-lp.exp() * lq, dim) for lp, lq, dim in zip(log_p, log_q, (-2, -1))]
    return sum(terms) / len(terms)


def kl_axes(log_p: Sequence[Tensor], log_q: Sequence[Tensor]) -> Tensor:
    """KL(p || q) per axis (h, w), averaged over the two axes (eq. 28c's P)."""
    terms = [_axis_reduce(lp.exp() * (lp - lq), dim) for lp, lq, dim in zip(log_p, log_q, (-2, -1))]
    return sum(terms) / len(terms)


def phi(a: Tensor, b: Tensor, kind: str) -> Tensor:
    """phi_k(a, b) of eq. 22 for one pair of maps of equal shape; ``kind`` in PHI_KINDS."""
    if kind == "l1":
        return (a - b).abs().mean()
    la, lb = axis_log_softmaxes(a), axis_log_softmaxes(b)
    if kind == "sym_ce":
        return 0.5 * (cross_entropy_axes(la, lb) + cross_entropy_axes(lb, la))
    if kind == "sym_kl":
        return 0.5 * (kl_axes(la, lb) + kl_axes(lb, la))
    raise ValueError(f"unknown phi kind {kind!r} (expected one of {', '.join(PHI_KINDS)})")


def phi_mean(maps_a: Sequence[Tensor], maps_b: Sequence[Tensor], kind: str) -> Tensor:
    """phi averaged over a list of paired maps (all disparity scales, or all decoder stages)."""
    if len(maps_a) != len(maps_b):
        raise ValueError(f"phi: {len(maps_a)} maps against {len(maps_b)}")
    return sum(phi(a, b, kind) for a, b in zip(maps_a, maps_b)) / len(maps_a)


def consistency_maps(outputs: dict, key: str) -> list[Tensor]:
    """d = every disparity scale; f = the decoder stages at those scales (X_dec^0..3; not X_dec^4 = X_enc^4)."""
    maps = list(outputs[key])
    return maps if key == "disp" else maps[: len(outputs["disp"])]


# ------------------------------------------------------------------------------- level geometry
SNAP_GRIDS = (32, 16, 8, 4, 2, 1)  # pixel grids a level may snap to, coarsest first (32: five stride-2 stages)
SNAP_TOLERANCE = 0.05  # PyramidConfig.snap_tolerance's default


def round_to_multiple(value: float, multiple: int = 32) -> int:
    """Nearest multiple (half rounds up, never below one multiple)."""
    return max(multiple, int(math.floor(value / multiple + 0.5)) * multiple)


def size_multiple(net: nn.Module | None) -> int:
    """The grid an architecture needs its input sides on (its ``size_multiple``: SmallDepth 1, RN18 /
    MobileNetV3 2, HQDecv2 32); 1 for nets that do not say."""
    return int(getattr(net, "size_multiple", 1) or 1)


def level_size(level: PyramidLevelConfig, cr_size: tuple[int, int], multiple: int = 1,
               tolerance: float = SNAP_TOLERANCE) -> tuple[int, int]:
    """(H, W) of I_lr / I_hr (eq. 20): ``size`` if given, else ``scale`` x cr in both axes, snapped to the coarsest
    grid of ``SNAP_GRIDS`` (not finer than ``multiple``) that keeps both sides within ``tolerance`` of the exact
    scale: 128x416 -> 96x320 / 160x512 (the paper's, grid 32), 64x208 -> 48x160 / 80x256 (grid 16),
    192x640 -> 144x480 / 240x800.  ``tolerance=0``: the exact scale, rounded only to ``multiple``."""
    if level.size is not None:
        return int(level.size[0]), int(level.size[1])
    exact = (cr_size[0] * level.scale, cr_size[1] * level.scale)
    for grid in (g for g in SNAP_GRIDS if g >= multiple and g % multiple == 0):
        size = (round_to_multiple(exact[0], grid), round_to_multiple(exact[1], grid))
        if all(abs(side - want) <= tolerance * want + 1e-9 for side, want in zip(size, exact)):
            return size
    return round_to_multiple(exact[0], multiple), round_to_multiple(exact[1], multiple)


def resize_snippet(images: Tensor, size: tuple[int, int]) -> Tensor:
    """(B,F,3,H,W) -> (B,F,3,h,w), bilinear with antialiasing."""
    b, f = images.shape[:2]
    flat = F.interpolate(images.flatten(0, 1), size=size, mode="bilinear", align_corners=False, antialias=True)
    return flat.unflatten(0, (b, f))


def jitter_snippets(images: Tensor, strengths: Sequence[float] = DEFAULT_JITTER) -> Tensor:
    """One ColorJitter draw per snippet, applied identically to all of its frames (B,F,3,H,W)."""
    b, c, s, h = strengths
    ranges = ([max(0.0, 1 - b), 1 + b], [max(0.0, 1 - c), 1 + c], [max(0.0, 1 - s), 1 + s], [-h, h])
    out = []
    for frames in images:
        order, *factors = ColorJitter.get_params(*ranges)
        adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
        for i in order.tolist():
            frames = adjust[i](frames, factors[i])
        out.append(frames.clamp(0.0, 1.0))
    return torch.stack(out)


def map_outputs(outputs: dict, fn: Callable[[Tensor, Tensor | None], Tensor], like: dict | None = None) -> dict:
    """Apply ``fn(map, reference_map)`` to the d / f lists of a depth-net output dict."""
    mapped = dict(outputs)
    for key in CONSISTENCY_KEYS + ("enc",):
        if key in outputs:
            refs = like[key] if like is not None else [None] * len(outputs[key])
            mapped[key] = [fn(x, r) for x, r in zip(outputs[key], refs)]
    return mapped


def _resize_to(x: Tensor, ref: Tensor | None) -> Tensor:
    if ref is None or x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def _flip(x: Tensor, _ref: Tensor | None = None) -> Tensor:
    return torch.flip(x, dims=(-1,))


def detach_outputs(outputs: dict, requires_grad: bool = False) -> dict:
    return map_outputs(outputs, lambda x, _r: x.detach().requires_grad_(requires_grad))


class ResizedInputNet(nn.Module):
    """use_cr wrapper: run ``net`` on the input resized to ``size``; resize its maps back by cr/size."""

    def __init__(self, net: nn.Module, size: tuple[int, int]):
        super().__init__()
        self.net, self.size = net, size

    def forward(self, image: Tensor) -> dict:
        h, w = image.shape[-2:]
        small = F.interpolate(image, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        sy, sx = h / self.size[0], w / self.size[1]

        def back(x: Tensor, _r: Tensor | None) -> Tensor:
            target = (round(x.shape[-2] * sy), round(x.shape[-1] * sx))
            return F.interpolate(x, size=target, mode="bilinear", align_corners=False)

        return map_outputs(self.net(small), back)


# ----------------------------------------------------------------------------------- the loss
def run_cr_loss(cr_loss, depth_net, pose_net, images: Tensor, K: Tensor, frame_ids, net_images: Tensor | None):
    """``cr_loss`` on clean ``images`` with the networks fed ``net_images`` (the keyword is passed only when
    given, so a cr loss without it still works on batches without jitter)."""
    if net_images is None:
        return cr_loss(depth_net, pose_net, images, K, frame_ids)
    return cr_loss(depth_net, pose_net, images, K, frame_ids, net_images=net_images)


class PyramidLoss(nn.Module):
    """L_py of eq. 20 around a ``CrLoss`` (see the module docstring for levels, phi and update modes)."""

    def __init__(
        self,
        cfg: PyramidConfig,
        cr_loss: nn.Module,
        color_jitter: Sequence[float] = DEFAULT_JITTER,
        detach_cr: bool | None = None,
        exact_cr_gradient: bool = False,
    ):
        super().__init__()
        self.cfg, self.cr_loss = cfg, cr_loss
        self.color_jitter = tuple(color_jitter)
        # sum mode keeps d_cr / f_cr live unless asked; per_level always stores them detached
        self.detach_cr = (cfg.mode == "per_level") if detach_cr is None else detach_cr
        self.exact_cr_gradient = exact_cr_gradient

    def active_levels(self) -> list[str]:
        levels = []
        for name in LEVELS:
            lvl: PyramidLevelConfig = getattr(self.cfg, name)
            if lvl.enabled and (lvl.alpha or lvl.beta or lvl.gamma):
                levels.append(name)
        return levels

    def forward(self, depth_net, pose_net, images: Tensor, K: Tensor, frame_ids, cr_extra: CrExtra | None = None,
                net_images: Tensor | None = None, color_images: Tensor | None = None):
        """L_py on a batch; ``cr_extra(cr_outputs) -> (loss, terms)`` is added to the cr level (APX);
        ``net_images``: the (jittered) frames the networks see, ``images`` the clean ones the losses compare;
        ``color_images``: the colour level's jittered frames when the data pipeline drew them (else drawn here)."""
        if "color" in self.active_levels() and color_images is None:
            color_images = jitter_snippets(images, self.color_jitter)  # host draws: not capturable
        run = self._forward_per_level if self.cfg.mode == "per_level" else self._forward_sum
        return run(depth_net, pose_net, images, K, frame_ids, cr_extra, (net_images, color_images))

    # -------------------------------------------------------------------------------- levels
    def level_view(self, name: str, depth_net, images: Tensor, K: Tensor, net_images: Tensor | None = None,
                   color_images: Tensor | None = None):
        """LevelView of level ``name``: the net, the loss images, K, ``to_cr(outputs, cr_outputs)`` mapping the
        level's maps back to cr, and the network input (None = the loss images)."""
        cr_size = tuple(images.shape[-2:])
        if name in ("lr", "hr"):
            size = self.level_size(name, cr_size, depth_net)
            if self.cfg.use_cr:  # Table VIII a4/a6: only the network input changes
                return LevelView(ResizedInputNet(depth_net, size), images, K, _map_resize, net_images)
            resized = None if net_images is None else resize_snippet(net_images, size)
            return LevelView(depth_net, resize_snippet(images, size), resize_intrinsics(K, cr_size, size),
                             _map_resize, resized)
        if name == "flip":
            flipped = None if net_images is None else torch.flip(net_images, dims=(-1,))
            return LevelView(depth_net, torch.flip(images, dims=(-1,)), flip_intrinsics(K, cr_size[1]),
                             _map_flip_back, flipped)
        if name == "color":  # jitter of the clean frames, seen by the networks and the loss alike
            jittered = color_images if color_images is not None else jitter_snippets(images, self.color_jitter)
            return LevelView(depth_net, jittered, K, _map_resize, None)
        raise ValueError(f"unknown pyramid level {name!r}")

    def level_size(self, name: str, cr_size: tuple[int, int], depth_net: nn.Module | None = None) -> tuple[int, int]:
        """(H, W) the lr / hr level ``name`` resizes to, on a grid ``depth_net`` accepts."""
        return level_size(getattr(self.cfg, name), cr_size, size_multiple(depth_net), self.cfg.snap_tolerance)

    def level_sizes(self, cr_size: tuple[int, int], depth_net: nn.Module | None = None) -> dict[str, tuple[int, int]]:
        sizes = {"cr": cr_size, "flip": cr_size, "color": cr_size}
        for name in ("lr", "hr"):
            sizes[name] = cr_size if self.cfg.use_cr else self.level_size(name, cr_size, depth_net)
        return {k: tuple(v) for k, v in sizes.items()}

    def _run_cr(self, depth_net, pose_net, images, K, frame_ids, net_images):
        return run_cr_loss(self.cr_loss, depth_net, pose_net, images, K, frame_ids, net_images)

    def _cr_level(self, depth_net, pose_net, images, K, frame_ids, cr_extra, net_images=None):
        out = self._run_cr(depth_net, pose_net, images, K, frame_ids, net_images)
        loss = self.cfg.alpha_cr * out.total
        terms = _prefixed("cr", out.terms)
        if cr_extra is not None:
            extra, extra_terms = cr_extra(out.outputs)
            loss = loss + extra
            terms.update(extra_terms)
        return loss, terms, out.outputs

    def _level(self, name, depth_net, pose_net, images, K, frame_ids, cr_ref: dict, seen=(None, None)):
        """alpha_k L_k + beta_k phi(d_cr, d^_k) + gamma_k phi(f_cr, f^_k) for one level (eq. 20); `seen`: the
        networks' input and the colour level's jittered frames (:meth:`forward`)."""
        lvl: PyramidLevelConfig = getattr(self.cfg, name)
        view = self.level_view(name, depth_net, images, K, *seen)
        out = self._run_cr(view.net, pose_net, view.images, view.K, frame_ids, view.net_images)
        loss = lvl.alpha * out.total
        terms = _prefixed(name, out.terms)
        mapped = view.to_cr(out.outputs, cr_ref)
        kind = "l1" if lvl.phi == "l1" else self.cfg.phi_kind
        for key, weight, label in (("disp", lvl.beta, "phi_disp"), ("dec", lvl.gamma, "phi_feat")):
            if weight:
                value = phi_mean(consistency_maps(cr_ref, key), consistency_maps(mapped, key), kind)
                loss = loss + weight * value
                terms[f"{name}/{label}"] = value.detach()
        terms[f"{name}/loss"] = loss.detach()
        return loss, terms

    # --------------------------------------------------------------------------------- modes
    def _forward_sum(self, depth_net, pose_net, images, K, frame_ids, cr_extra, seen) -> PyramidOutput:
        total, terms, cr_out = self._cr_level(depth_net, pose_net, images, K, frame_ids, cr_extra, seen[0])
        cr_ref = detach_outputs(cr_out) if self.detach_cr else cr_out
        for name in self.active_levels():
            loss, level_terms = self._level(name, depth_net, pose_net, images, K, frame_ids, cr_ref, seen)
            total = total + loss
            terms.update(level_terms)
        terms["py/total"] = total.detach()
        return PyramidOutput(total, terms, cr_out, False, self.level_sizes(tuple(images.shape[-2:]), depth_net))

    def _forward_per_level(self, depth_net, pose_net, images, K, frame_ids, cr_extra, seen) -> PyramidOutput:
        exact = self.exact_cr_gradient
        cr_loss, terms, cr_out = self._cr_level(depth_net, pose_net, images, K, frame_ids, cr_extra, seen[0])
        cr_ref = detach_outputs(cr_out, requires_grad=exact)  # leaves collect the phi gradients if exact
        cr_loss.backward(retain_graph=exact)
        total = cr_loss.detach()
        del cr_loss
        if not exact:
            cr_out = None  # free cr's graph now
        for name in self.active_levels():
            loss, level_terms = self._level(name, depth_net, pose_net, images, K, frame_ids, cr_ref, seen)
            loss.backward()
            total = total + loss.detach()
            terms.update(level_terms)
            del loss
        if exact:
            _backprop_into(cr_out, cr_ref)
        terms["py/total"] = total
        outputs = detach_outputs(cr_ref)
        return PyramidOutput(total, terms, outputs, True, self.level_sizes(tuple(images.shape[-2:]), depth_net))


def _backprop_into(live: dict, leaves: dict) -> None:
    """Push the gradients accumulated on the detached leaves through the live (retained) cr graph."""
    tensors, grads = [], []
    for key in CONSISTENCY_KEYS:
        for x, leaf in zip(live.get(key, []), leaves.get(key, [])):
            if leaf.grad is not None and x.requires_grad:
                tensors.append(x)
                grads.append(leaf.grad)
    if tensors:
        torch.autograd.backward(tensors, grads)


def _map_resize(outputs: dict, cr_ref: dict) -> dict:
    return map_outputs(outputs, _resize_to, like=cr_ref)


def _map_flip_back(outputs: dict, cr_ref: dict) -> dict:
    return map_outputs(map_outputs(outputs, _flip), _resize_to, like=cr_ref)


def _prefixed(prefix: str, terms: dict) -> dict[str, Tensor]:
    return {f"{prefix}/{k}": v for k, v in terms.items()}
