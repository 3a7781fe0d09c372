"""Function-approximation distillation L_apx (Sec. III-E, eq. 28) and the frozen teacher.

    L_apx = sum_{j in {enc,dec}} lambda_j sum_{i=0..4} P(Z_j^i, X_j^i)
            + lambda_disp sum_{i=0..3} P(M_i * Z_disp^i, M_i * X_disp^i)                        (28a)
    M_i   = Z_disp^i > k * median(Z_disp^i)                                                     (28b)
    P(a,b)= 1/2 sum_{m in {h,w}} KL(psi_m(a) || psi_m(b))                                        (28c)

Z = teacher, X = student.  Decisions (design note section 6.2, decision 12):

* psi_h / psi_w: softmax along H / W of every (batch, channel) map; KL summed over that axis and averaged over
  the others (resolution-independent), then averaged over the two axes.
* Stage pairing: encoder stages pairwise; the student's decoder has one stage fewer than the teacher's, so its
  deepest encoder map stands in for X_dec^4.  Channel mismatch: ``adapter="conv"`` = a training-only 1x1 conv
  (with bias) per stage, student -> teacher channels; ``"mean"`` = channel mean of both maps (no parameters).
* Spatial mismatch: the (adapted) student map is resized bilinearly to the teacher map's size.
* Disparity: the teacher's full-resolution disparity is resized to each of the student's scales.
* Mask (28b): median per image (the lower median of the C*H*W values, ``torch.median``); masked pixels are set
  to 0 *before* the softmax, as written in eq. 28a, so they still share the normalisation (-inf would be the
  deviation).  ``mask="none"`` disables it.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fadepth.config import ApxConfig
from fadepth.losses.pyramid import axis_log_softmaxes, kl_axes


# --------------------------------------------------------------------------------- P (eq. 28c)
def approximation_divergence(teacher_map: Tensor, student_map: Tensor) -> Tensor:
    """P(a, b) = 1/2 sum_m KL(psi_m(a) || psi_m(b)), a = teacher (eq. 28c)."""
    return kl_axes(axis_log_softmaxes(teacher_map), axis_log_softmaxes(student_map))


def median_mask(teacher_disp: Tensor, k: float) -> Tensor:
    """M = Z > k * median(Z), the median taken per image over all its values (eq. 28b)."""
    median = teacher_disp.flatten(1).median(dim=1).values
    return (teacher_disp > k * median.view(-1, *([1] * (teacher_disp.dim() - 1)))).to(teacher_disp.dtype)


def resize_to(x: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def student_stage_maps(outputs: dict, key: str, n_teacher: int) -> list[Tensor]:
    """X_j^i for j = enc / dec; X_dec^4 := X_enc^4 when the student has one decoder stage fewer."""
    maps = list(outputs[key])
    if key == "dec" and len(maps) == n_teacher - 1:
        maps.append(outputs["enc"][-1])
    return maps


def student_stage_channels(enc: Sequence[int], dec: Sequence[int], key: str, n_teacher: int) -> list[int]:
    channels = list(enc if key == "enc" else dec)
    if key == "dec" and len(channels) == n_teacher - 1:
        channels.append(list(enc)[-1])
    return channels


class ApproximationLoss(nn.Module):
    """L_apx of eq. 28 with training-only per-stage adapters (``objective.parameters()``)."""

    def __init__(
        self,
        cfg: ApxConfig,
        student_enc_channels: Sequence[int],
        student_dec_channels: Sequence[int],
        teacher_enc_channels: Sequence[int],
        teacher_dec_channels: Sequence[int],
        identity_init: bool = False,
    ):
        super().__init__()
        self.cfg = cfg
        self.teacher_channels = {"enc": list(teacher_enc_channels), "dec": list(teacher_dec_channels)}
        self.adapters = nn.ModuleDict()
        if cfg.adapter == "conv":
            for key, t_channels in self.teacher_channels.items():
                s_channels = student_stage_channels(student_enc_channels, student_dec_channels, key, len(t_channels))
                if len(s_channels) < len(t_channels):
                    raise ValueError(f"APX: student has {len(s_channels)} {key} stages, teacher {len(t_channels)}")
                convs = (nn.Conv2d(s, t, 1, bias=True) for s, t in zip(s_channels, t_channels))
                self.adapters[key] = nn.ModuleList(convs)
        if identity_init:
            self.reset_adapters_to_identity()

    @torch.no_grad()
    def reset_adapters_to_identity(self) -> None:
        """Identity on the shared channels, zero elsewhere (exact identity when the channels match)."""
        for stages in self.adapters.values():
            for conv in stages:
                conv.weight.zero_()
                conv.bias.zero_()
                n = min(conv.in_channels, conv.out_channels)
                conv.weight[:n, :n, 0, 0] = torch.eye(n)

    def _adapt(self, key: str, i: int, student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
        if self.cfg.adapter == "mean":
            student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
        else:
            student = self.adapters[key][i](student)
        return resize_to(student, teacher.shape[-2:]), teacher

    def stage_term(self, key: str, student_out: dict, teacher_out: dict) -> Tensor:
        """sum_i P(Z_j^i, X_j^i) over the paired stages of j = enc / dec."""
        teacher_maps = list(teacher_out[key])
        student_maps = student_stage_maps(student_out, key, len(teacher_maps))
        total = student_maps[0].new_zeros(())
        for i, teacher_map in enumerate(teacher_maps):
            student_map, teacher_map = self._adapt(key, i, student_maps[i], teacher_map)
            total = total + approximation_divergence(teacher_map.detach(), student_map)
        return total

    def disparity_term(self, student_out: dict, teacher_out: dict) -> Tensor:
        """sum_i P(M_i Z_disp^i, M_i X_disp^i), Z_disp^i = full-res teacher disparity resized to scale i."""
        teacher_full = teacher_out["disp"][0].detach()
        total = teacher_full.new_zeros(())
        for student_disp in student_out["disp"]:
            teacher_disp = resize_to(teacher_full, student_disp.shape[-2:])
            if self.cfg.mask == "median":
                mask = median_mask(teacher_disp, self.cfg.mask_k)
                teacher_disp, student_disp = teacher_disp * mask, student_disp * mask  # zeroed before softmax
            total = total + approximation_divergence(teacher_disp, student_disp)
        return total

    def forward(self, student_out: dict, teacher_out: dict) -> tuple[Tensor, dict[str, Tensor]]:
        c = self.cfg
        terms: dict[str, Tensor] = {}
        total = student_out["disp"][0].new_zeros(())
        for name, weight, fn in (
            ("enc", c.lambda_enc, lambda: self.stage_term("enc", student_out, teacher_out)),
            ("dec", c.lambda_dec, lambda: self.stage_term("dec", student_out, teacher_out)),
            ("disp", c.lambda_disp, lambda: self.disparity_term(student_out, teacher_out)),
        ):
            if weight:
                value = fn()
                total = total + weight * value
                terms[f"apx/{name}"] = value
        terms["apx/total"] = total
        return total, {k: v.detach() for k, v in terms.items()}


# ------------------------------------------------------------------------------------ teacher
class Teacher:
    """Frozen teacher (eval, no_grad), not an nn.Module so its weights stay out of optimisers and state dicts.

    Runs at ``cfg.teacher_height/width`` when set and resizes every map by student/teacher size so the maps
    line up with the student's stages.  Optional disk cache of outputs by sample id under ``cfg.cache_dir``.
    """

    def __init__(self, cfg: ApxConfig, device, allow_random_teacher: bool = False, net: nn.Module | None = None):
        self.cfg, self.device = cfg, torch.device(device)
        self.net, self.checkpoint_sha256 = self._build(net, allow_random_teacher)
        self.net.to(self.device).eval().requires_grad_(False)
        self.cache = None
        if cfg.cache_dir and self.checkpoint_sha256 is None:
            warnings.warn("APX teacher cache disabled: a randomly initialised teacher has no checkpoint hash")
        elif cfg.cache_dir:
            self.cache = TeacherCache(cfg.cache_dir, self.cache_key())

    def _build(self, net, allow_random_teacher):
        from fadepth.checkpoint import file_sha256
        from fadepth.models import load_model

        if self.cfg.teacher_checkpoint is not None:
            loaded, loaded_cfg = load_model(self.cfg.teacher_checkpoint, self.device)
            if loaded_cfg.model.name != self.cfg.teacher:
                warnings.warn(
                    f"APX teacher checkpoint holds {loaded_cfg.model.name!r}, config says {self.cfg.teacher!r}"
                )
            return loaded, file_sha256(self.cfg.teacher_checkpoint)
        if not allow_random_teacher:
            raise ValueError("APX needs loss.apx.teacher_checkpoint (a trained teacher); got None")
        warnings.warn(
            f"!!! APX TEACHER {self.cfg.teacher!r} IS RANDOMLY INITIALISED (no checkpoint): distilling noise !!!",
            stacklevel=2,
        )
        if net is None:
            from fadepth.models import create

            net = create(self.cfg.teacher)
        return net, None

    @property
    def enc_channels(self) -> list[int]:
        return list(self.net.enc_channels)

    @property
    def dec_channels(self) -> list[int]:
        return list(self.net.dec_channels)

    def cache_key(self) -> dict:
        return {
            "teacher": self.cfg.teacher,
            "checkpoint_sha256": self.checkpoint_sha256,
            "teacher_size": [self.cfg.teacher_height, self.cfg.teacher_width],
        }

    @torch.no_grad()
    def __call__(self, images: Tensor, ids: Sequence[str] | None = None) -> dict:
        """Teacher outputs for a (B,3,H,W) batch, from the cache where the same image was seen before."""
        if self.cache is None or ids is None:
            return self._run(images)
        cached = [self.cache.load(sample_id, image) for sample_id, image in zip(ids, images)]
        missing = [i for i, out in enumerate(cached) if out is None]
        if missing:
            fresh = self._run(images[missing])
            for row, i in enumerate(missing):
                cached[i] = _select_row(fresh, row)
                self.cache.store(ids[i], images[i], cached[i])
        return _stack_rows([_to(out, images.device) for out in cached])

    def _run(self, images: Tensor) -> dict:
        h, w = images.shape[-2:]
        th, tw = self.cfg.teacher_height or h, self.cfg.teacher_width or w
        out = self.net(resize_to(images.to(self.device), (th, tw)))
        sy, sx = h / th, w / tw
        return {k: [resize_to(x, (round(x.shape[-2] * sy), round(x.shape[-1] * sx))) for x in out[k]]
                for k in ("disp", "enc", "dec")}


# --------------------------------------------------------------------------------------- cache
class TeacherCache:
    """One ``<id>.pt`` per sample under ``root``; ``manifest.json`` holds the key (teacher + checkpoint SHA-256).

    A manifest with a different key means a stale cache: its entries are deleted and rebuilt, never used.
    Each entry also stores the SHA-1 of the exact input image, so augmented inputs miss instead of hitting.
    Entries are float32 on CPU (roughly 4 MB per 128x416 sample for HQDecv2-sized outputs).
    """

    def __init__(self, root: str | Path, key: dict):
        self.root, self.key = Path(root), key
        self.rebuilt = self._validate()

    def _validate(self) -> bool:
        manifest = self.root / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text()) == self.key:
            return False
        if manifest.is_file():
            warnings.warn(f"teacher cache {self.root} is stale (teacher or checkpoint changed): rebuilding")
        if self.root.exists():
            shutil.rmtree(self.root / "entries", ignore_errors=True)
        (self.root / "entries").mkdir(parents=True, exist_ok=True)
        manifest.write_text(json.dumps(self.key, sort_keys=True))
        return True

    def _path(self, sample_id: str) -> Path:
        return self.root / "entries" / (hashlib.sha1(str(sample_id).encode()).hexdigest() + ".pt")

    @staticmethod
    def image_digest(image: Tensor) -> str:
        return hashlib.sha1(image.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()

    def load(self, sample_id: str, image: Tensor) -> dict | None:
        path = self._path(sample_id)
        if not path.is_file():
            return None
        entry = torch.load(path, map_location="cpu", weights_only=True)
        return entry["outputs"] if entry.get("image_sha1") == self.image_digest(image) else None

    def store(self, sample_id: str, image: Tensor, outputs: dict) -> None:
        from fadepth.utils import atomic_torch_save

        entry = {"image_sha1": self.image_digest(image), "outputs": _to(outputs, "cpu")}
        atomic_torch_save(entry, self._path(sample_id))


def _select_row(outputs: dict, row: int) -> dict:
    return {k: [x[row : row + 1] for x in v] for k, v in outputs.items() if k in ("disp", "enc", "dec")}


def _stack_rows(rows: list[dict]) -> dict:
    return {k: [torch.cat([r[k][i] for r in rows]) for i in range(len(rows[0][k]))] for k in rows[0]}


def _to(outputs: dict, device) -> dict:
    return {k: [x.to(device) for x in v] for k, v in outputs.items()}
