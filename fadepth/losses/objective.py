"""The training objective a config asks for: L_cr, L_py (eq. 20), L_cr + L_apx, or L_py + L_apx (eq. 28).

Batches may carry ``images_aug`` (colour-jittered frames, ``fadepth.data.transforms``): the networks and the
APX teacher see them, every photometric loss compares the clean ``images`` (monodepth2's color / color_aug).

APX is computed on the cr level's outputs (the target frame without pyramid augmentation) only.  Under ``L_py`` in
``per_level`` mode it is added to the cr level's loss and back-propagated with it, so the returned
``loss`` is then a detached value and ``backward_done`` is True.  The trainer optimises
``objective.parameters()`` (the APX adapters, training-only: exclude them from deployed counts) alongside
the depth and pose nets; the frozen teacher is deliberately not a registered submodule, so its weights are
neither optimised nor written into the ``objective`` entry of a checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from torch import Tensor, nn

from fadepth.config import ExperimentConfig
from fadepth.losses.apx import ApproximationLoss, Teacher
from fadepth.losses.pyramid import PyramidLoss, run_cr_loss


@dataclass
class ObjectiveOutput:
    loss: Tensor | None  # live when backward_done is False; a detached value otherwise
    terms: dict[str, Tensor] = field(default_factory=dict)  # detached 0-dim tensors on the device
    outputs: dict = field(default_factory=dict)  # the depth net's dict for the (cr) target frame
    backward_done: bool = False


class Objective(nn.Module):
    def __init__(
        self,
        cr_loss: nn.Module,
        frame_ids: Sequence[int] = (0, -1, 1),
        pyramid: PyramidLoss | None = None,
        apx: ApproximationLoss | None = None,
        teacher=None,
    ):
        super().__init__()
        if (apx is None) != (teacher is None):
            raise ValueError("ApproximationLoss and its teacher come together")
        self.cr_loss, self.pyramid, self.apx = cr_loss, pyramid, apx
        self.frame_ids = list(frame_ids)
        self.__dict__["teacher"] = teacher  # frozen, outside the module tree on purpose

    @property
    def recipe(self) -> str:
        return ("py" if self.pyramid is not None else "cr") + ("+apx" if self.apx is not None else "")

    @property
    def needs_color_level(self) -> bool:
        """The pyramid's colour level is on: training batches should carry its jittered frames, ``images_color``
        (``fadepth.data.build_dataset(color_level=True)``), so that a step draws nothing on the host."""
        return self.pyramid is not None and "color" in self.pyramid.active_levels()

    def set_progress(self, iteration: int, total: int) -> None:
        """Forward the training position to losses that schedule their terms (L_cr's warm-up)."""
        if hasattr(self.cr_loss, "set_progress"):
            self.cr_loss.set_progress(iteration, total)

    def forward(self, depth_net: nn.Module, pose_net: nn.Module, batch: dict) -> ObjectiveOutput:
        images, K, net_images = batch["images"], batch["K"], batch.get("images_aug")
        seen = images if net_images is None else net_images
        apx_term = self._apx_term(seen, batch.get("id")) if self.apx is not None else None
        if self.pyramid is not None:
            out = self.pyramid(depth_net, pose_net, images, K, self.frame_ids, cr_extra=apx_term,
                               net_images=net_images, color_images=batch.get("images_color"))
            terms = dict(out.terms, loss=out.total.detach())
            return ObjectiveOutput(out.total, terms, out.outputs, out.backward_done)
        cr = run_cr_loss(self.cr_loss, depth_net, pose_net, images, K, self.frame_ids, net_images)
        loss, terms = cr.total, {f"cr/{k}": v for k, v in cr.terms.items()}
        if apx_term is not None:
            extra, apx_terms = apx_term(cr.outputs)
            loss = loss + extra
            terms.update(apx_terms)
        terms["loss"] = loss.detach()
        return ObjectiveOutput(loss, terms, cr.outputs, False)

    def _apx_term(self, images: Tensor, ids):
        """A closure: cr outputs -> (lambda-weighted L_apx, terms); the teacher sees the target frame."""
        target = images[:, self.frame_ids.index(0)]

        def term(student_outputs: dict):
            teacher_outputs = self.teacher(target, ids)
            return self.apx(student_outputs, teacher_outputs)

        return term


def build_objective(
    cfg: ExperimentConfig,
    depth_net: nn.Module,
    device,
    *,
    cr_loss: nn.Module | None = None,
    teacher=None,
    allow_random_teacher: bool = False,
) -> Objective:
    """Objective for ``cfg.loss``; ``cr_loss`` / ``teacher`` may be injected (tests, pre-built teachers)."""
    if cr_loss is None:
        from fadepth.losses.cr import CrLoss

        cr_loss = CrLoss(cfg.loss.cr)
    pyramid = None
    if cfg.loss.pyramid.enabled:
        aug = cfg.data.augment
        jitter = (aug.brightness, aug.contrast, aug.saturation, aug.hue)
        pyramid = PyramidLoss(cfg.loss.pyramid, cr_loss, color_jitter=jitter)
    apx = None
    if cfg.loss.apx.enabled:
        if teacher is None:
            allow = allow_random_teacher or cfg.loss.apx.allow_random_teacher
            teacher = Teacher(cfg.loss.apx, device, allow_random_teacher=allow)
        apx = ApproximationLoss(
            cfg.loss.apx,
            depth_net.enc_channels,
            depth_net.dec_channels,
            teacher.enc_channels,
            teacher.dec_channels,
        )
    return Objective(cr_loss, cfg.data.frame_ids, pyramid, apx, teacher).to(device)
