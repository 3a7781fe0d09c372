"""L_cr: the per-level self-supervised loss of eq. (21), a **CbwLoss-like** recipe.

    L_cr = lambda_p L_p + lambda_d L_d + lambda_f L_feat + lambda_s L_s      (eq. 21)

No public implementation of CbwLoss [20] exists; this is the best reading recorded in the design note
(architecture note section 2, decision 9), on top of the monodepth2 machinery. It is *not* a verified port.

Decisions
---------
1. **Networks.** The depth net sees all F frames in ONE forward call (frame-major batch of F*B images)
   whenever a source depth or feature is needed (bidirectional L_p, L_d, structure weighting or L_feat);
   otherwise only the target. The pose net sees each (target, source) pair with the frames in temporal
   order ([s, t] for negative ids, then inverted; [t, s] for positive ids), as monodepth2; all pairs go
   through it in one pass whose BatchNorm normalises each pair-batch alone (``batched_pose``,
   ``fadepth.models.posenet.PairBatchNorm2d``): the values of one pass per pair. ``pose_input_scale`` < 1
   shows it area-downsampled pairs instead (a faster, different computation; not a default). The reverse
   direction uses the exact inverse T_{s->t} = T_{t->s}^-1 (no second pose pass).
2. **Scales.** n = min(cfg.num_scales, len(disp)) disparity scales, each upsampled bilinearly to (H, W)
   before warping (monodepth2; one interpolation per scale for all frames of the frame-major batch); depth by
   eq. (12), ``fadepth.models.disp_to_depth`` (cfg.min_depth and cfg.max_depth are not used: eq. 12 fixes the
   range to ~[0.1, 100]). L_p and L_d are averaged over scales.
3. **L_p** (per direction): pe = 0.85 (1-SSIM)/2 + 0.15 L1. Forward (t <- s): per-pixel minimum over the
   sources (``min_reprojection``; otherwise the average). Projections that leave the source keep their
   border-padded error as in monodepth2 (``exclude_out_of_view=True`` drops them instead, which the net
   exploits by predicting near depth at the borders). Auto-mask (``automask``): keep a pixel only where
   that minimum is below the minimum identity error pe(source, target) + N(0, 1e-5). Structure weight
   (``structure_weighting``): W = 1 - clamp(|D_comp - D_interp| / (D_comp + D_interp), 0, 1) of the
   selected source, *detached* (L_d carries the depth-structure gradient). The loss is the mean over all
   pixels of mask * W * pe (masked pixels add 0: monodepth2's gradients without its constant identity
   part). Reverse (``bidirectional``): the target is warped into each source view with the source depth and
   T^-1, masked and weighted the same way; L_p = (forward + mean of reverse) / 2.
4. **L_d**: mean over valid pixels of |D_comp - D_interp| / (D_comp + D_interp), D_comp = depth of the
   warped points in the other camera, D_interp = the other view's predicted depth sampled there; averaged
   over sources and both directions (SC-Depth geometry consistency). lambda_d = 0.02 by default: the design
   note's 0.5 (SC-Depth's weight) measurably flattens the depth of a net trained from scratch.
5. **L_feat**: L1 (channel mean) between the target's finest encoder feature ``outputs["enc"][0]`` and the
   source's finest feature sampled with the scale-0 grid resized to the feature resolution (``feature_source``:
   "decoder" uses ``outputs["dec"][0]`` instead, the design note's reading, which measurably rewards
   inverted depth: decoder features encode depth, and depth changes with the motion between frames); min over sources,
   auto-mask with the identity feature error, W and validity exactly like L_p, both directions. Features are
   *detached* (stop-gradient): the term trains depth and pose through the sampling grid only, which rules out
   the trivial constant-feature solution. All maps of a snippet are divided by the target feature's
   per-sample mean |f|, so lambda_f means the same for BN (SmallDepth) and ELU (monodepth2) features.
6. **L_s**: monodepth2 edge-aware smoothness of each scale's *native* disparity against the target image
   resized (area) to that size, scaled by 1/2^s and averaged over scales; weight lambda_s = cfg.smoothness
   (1e-3). Target frame only.
7. **Switches.** A term whose weight is 0 is not computed (its reported value is 0). ``terms`` holds the
   *unweighted* values; ``total = sum(lambda * term)``.
8. **Warm-up** (not in the paper): for the first ``warmup_fraction`` of training (``set_progress``) L_cr is
   the plain L_p (per-pixel minimum, optionally bidirectional) + L_s; auto-mask, L_d, L_feat and the structure
   weight switch on after it. From scratch, the auto-mask keeps a random pose net at zero motion and L_d
   shrinks the depth scale to eq. 12's floor (both measured; ``benchmarks/bench_learning.py``). Without a
   ``set_progress`` call every term is on.
9. **Clean and jittered frames** (monodepth2's ``color`` / ``color_aug``): ``net_images`` (default: ``images``)
   is what the depth and pose networks see, e.g. colour-jittered frames; L_p, its auto-mask and L_s compare
   the un-jittered ``images``. Both share K and the geometric augmentation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from fadepth.config import CrLossConfig
from fadepth.geometry import (backproject, invert_pose, pinhole_inverse, pose_vec_to_mat, project, resize_grid, sample,
                              valid_mask)
from fadepth.losses.photometric import edge_aware_smoothness, photometric_error
from fadepth.losses.stacking import (  # noqa: F401 (masked_mean, structure_difference: part of this module's API)
    StaticIndex, flat, masked_mean, select_frame, structure_difference, upsample)
from fadepth.models import disp_to_depth

TERMS = ("photometric", "depth_consistency", "feature", "smoothness", "total")
_OUTSIDE = 1e4  # error given to invalid projections so that the per-pixel minimum never picks them


@dataclass
class CrOutput:
    total: torch.Tensor
    terms: dict[str, torch.Tensor]  # detached 0-dim tensors, still on the device (read them at log time)
    outputs: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Prediction:
    """What the networks said about one snippet."""

    target_out: dict[str, Any]  # the depth net's outputs for the target frame
    frame_major: dict[str, Any]  # its outputs for every predicted frame, frame-major (F'*B rows)
    predicted: list[int]  # the frame ids in frame_major, in order (only 0 when no source is needed)
    poses: dict[int, torch.Tensor]  # T_target->source (B,4,4) per source frame id
    inverse_poses: dict[int, torch.Tensor]  # T_source->target (B,4,4): the reverse direction's motion


@dataclass
class _Views:
    """Every warping direction of every scale, stacked: tensors are (S, V, B, ...) with S scales and V views.

    Views 0..n_fwd-1 are the forward directions (target <- source j, j in source order); the rest, if any, the
    reverse ones (source j <- target), in the same source order.
    """

    pe: torch.Tensor | None  # (S,V,B,1,H,W) photometric error of the synthesised view
    valid: torch.Tensor  # (S,V,B,1,H,W) projection inside the other image, in front of its camera
    weight: torch.Tensor  # (S,V,B,1,H,W) detached structure weight W (ones if disabled)
    diff: torch.Tensor | None  # (S,V,B,1,H,W) depth-structure difference (with grad), or None
    grid: torch.Tensor  # (S,V,B,H,W,2) sampling grids
    n_fwd: int


# ------------------------------------------------------------------------------------------ loss
class CrLoss(nn.Module):
    """L_cr (eq. 21), CbwLoss-like: see the module docstring for every decision.

    Every warp of a step (all scales, sources and directions) is one back-projection, one projection and one
    ``grid_sample``; every photometric error is one SSIM call; min-reprojection, auto-mask and L_d are
    reductions over the stacked views. The loss runs in fp32 whatever the autocast dtype of the networks.
    """

    def __init__(self, cfg: CrLossConfig | None = None):
        super().__init__()
        self.cfg = cfg if cfg is not None else CrLossConfig()
        self.warming_up = False
        self.index = StaticIndex()

    def set_progress(self, iteration: int, total: int) -> None:
        """Tell the loss where training is (decision 8): warm-up while iteration < warmup_fraction * total."""
        self.warming_up = iteration < self.cfg.warmup_fraction * total

    # -- which parts are needed -------------------------------------------------------------------
    @property
    def _use(self) -> dict[str, bool]:
        c, full = self.cfg, not self.warming_up
        use = {
            "p": c.photometric > 0,
            "d": c.depth_consistency > 0 and full,
            "f": c.feature > 0 and full,
            "s": c.smoothness > 0,
            "mask": c.automask and full,
        }
        use["w"] = c.structure_weighting and full and (use["p"] or use["f"])
        use["warp"] = use["p"] or use["d"] or use["f"]
        use["src_depth"] = use["d"] or use["w"] or (c.bidirectional and (use["p"] or use["f"]))
        use["src_net"] = use["src_depth"] or use["f"]
        return use

    # -- forward --------------------------------------------------------------------------------------
    def forward(
        self,
        depth_net: nn.Module,
        pose_net: nn.Module,
        images: torch.Tensor,
        K: torch.Tensor,
        frame_ids: Sequence[int] = (0, -1, 1),
        net_images: torch.Tensor | None = None,
    ) -> CrOutput:
        """L_cr of the snippet ``images`` (B,F,3,H,W); the networks see ``net_images`` if given (decision 9)."""
        use = self._use
        frame_ids = list(frame_ids)
        if len(frame_ids) != images.shape[1]:
            raise ValueError(f"frame_ids {frame_ids} do not match {images.shape[1]} frames")
        if net_images is None:
            net_images = images
        elif net_images.shape != images.shape:
            raise ValueError(f"net_images {tuple(net_images.shape)} do not match images {tuple(images.shape)}")
        net_frames = {fid: net_images[:, i] for i, fid in enumerate(frame_ids)}
        use_warp = use["warp"] and len(frame_ids) > 1
        pred = self._predict(depth_net, pose_net, net_frames, use_warp and use["src_net"], use_warp)
        with torch.autocast(images.device.type, enabled=False):  # the loss in fp32
            return self._loss(pred, images.float(), K.float(), frame_ids, use_warp)

    def _loss(self, pred: "_Prediction", images, K, frame_ids, use_warp: bool) -> CrOutput:
        cfg, use = self.cfg, self._use
        outputs = pred.target_out
        n_scales = min(cfg.num_scales, len(outputs["disp"]))
        zero = images.new_zeros(())
        terms = {name: zero for name in TERMS}
        extras: dict[str, Any] = {"poses": pred.poses}
        frames = images.transpose(0, 1)  # (F,B,3,H,W), frame_ids order
        if use_warp:
            views = self._warp_views(pred, frames, frame_ids, K, n_scales)
            if use["p"]:
                identity = self._identity_errors(frames, frame_ids, views.n_fwd) if use["mask"] else None
                per_scale, mask = self._directional(views.pe, views.valid, views.weight, identity, views.n_fwd)
                terms["photometric"] = per_scale.mean()
                extras["automask"] = mask[0].detach()
                extras["automask_fraction"] = mask[0].detach().mean()
            if use["d"]:
                terms["depth_consistency"] = self._depth_consistency_term(views)
            if use["f"]:
                terms["feature"] = self._feature_term(pred, frame_ids, views)
        if use["s"]:
            disps = [d.float() for d in outputs["disp"][:n_scales]]
            terms["smoothness"] = self._smoothness_term(disps, frames[frame_ids.index(0)])
        total = (
            cfg.photometric * terms["photometric"]
            + cfg.depth_consistency * terms["depth_consistency"]
            + cfg.feature * terms["feature"]
            + cfg.smoothness * terms["smoothness"]
        )
        terms["total"] = total
        return CrOutput(total=total, terms={k: v.detach() for k, v in terms.items()}, outputs=outputs, extras=extras)

    # -- prediction -----------------------------------------------------------------------------------
    def _predict(self, depth_net, pose_net, frames: dict[int, torch.Tensor], all_frames: bool, poses: bool):
        """Depth of the target (or of every frame, in ONE call) and the pose of every (target, source) pair,
        from the frames the networks see (``net_images``)."""
        ids = list(frames) if all_frames else [0]
        b = frames[0].shape[0]
        flat_frames = torch.cat([frames[fid] for fid in ids]) if all_frames else frames[0]
        out = depth_net(flat_frames)
        target_out = select_frame(out, ids.index(0), b, len(ids) * b) if all_frames else out
        forward, inverse = {}, {}
        if poses:
            src_ids = [fid for fid in frames if fid != 0]
            stacked = [  # temporal order, as monodepth2
                torch.cat((frames[fid], frames[0]) if fid < 0 else (frames[0], frames[fid]), dim=1) for fid in src_ids
            ]
            if self.cfg.pose_input_scale != 1.0:
                stacked = [F.interpolate(x, scale_factor=self.cfg.pose_input_scale, mode="area") for x in stacked]
            if self.cfg.batched_pose and len(stacked) > 1 and getattr(pose_net, "batches_pairs", False):
                vectors = pose_net(torch.cat(stacked), pairs=len(stacked))
            else:
                vectors = torch.cat([pose_net(x) for x in stacked])
            forward, inverse = self._pose_matrices(vectors.float(), src_ids)
        return _Prediction(target_out, out, ids, poses=forward, inverse_poses=inverse)

    @staticmethod
    def _pose_matrices(vectors: torch.Tensor, src_ids: list[int]):
        """T_target->source and its exact inverse per source, from the stacked pose vectors: one Rodrigues and
        one inversion for all pairs (a pair seen as [source, target] is inverted, as monodepth2)."""
        as_seen = pose_vec_to_mat(vectors)
        inverted = invert_pose(as_seen)
        seen, inv = as_seen.chunk(len(src_ids)), inverted.chunk(len(src_ids))
        forward = {fid: inv[j] if fid < 0 else seen[j] for j, fid in enumerate(src_ids)}
        inverse = {fid: seen[j] if fid < 0 else inv[j] for j, fid in enumerate(src_ids)}
        return forward, inverse

    # -- warp directions ------------------------------------------------------------------------------
    def _view_layout(self, frame_ids: list[int]):
        """(target frame, source frame, source id) of every view: forward views, then reverse ones."""
        t = frame_ids.index(0)
        srcs = [(frame_ids.index(fid), fid) for fid in frame_ids if fid != 0]
        views = [(t, s, fid) for s, fid in srcs]
        if self.cfg.bidirectional:
            views += [(s, t, fid) for s, fid in srcs]
        return views, len(srcs)

    def _warp_views(self, pred: _Prediction, frames, frame_ids, K, n_scales: int) -> _Views:
        """Warp every view of every scale in one go (decisions 2-4)."""
        use = self._use
        layout, n_fwd = self._view_layout(frame_ids)
        tgt, src = [v[0] for v in layout], [v[1] for v in layout]
        s_, v_, b = n_scales, len(layout), frames.shape[1]
        height, width = frames.shape[-2:]
        # eq. 12 depth of every predicted frame at every scale (S, F', B, 1, H, W), frame_ids order
        disps = pred.frame_major["disp"][:n_scales]
        depth = torch.stack([disp_to_depth(upsample(d.float(), (height, width))) for d in disps])
        depth = depth.reshape(s_, -1, b, 1, height, width)
        has_src_depth = depth.shape[1] == frames.shape[0]
        pos = {fid: i for i, fid in enumerate(pred.predicted)}  # row of each frame in the depth stack
        depth_t = self.index.gather(depth, [pos[frame_ids[i]] for i in tgt], dim=1)
        T = torch.stack([pred.poses[fid] for _, _, fid in layout[:n_fwd]]
                        + [pred.inverse_poses[fid] for _, _, fid in layout[n_fwd:]])  # (V,B,4,4)
        T = flat(T.unsqueeze(0).expand(s_, -1, -1, -1, -1), 3)
        capturing = K.is_cuda and torch.cuda.is_current_stream_capturing()
        inv = pinhole_inverse(K) if capturing else torch.linalg.inv_ex(K)[0]  # both without a host sync
        K_all, inv_K = (k.unsqueeze(0).expand(s_ * v_, -1, -1, -1).reshape(-1, 3, 3) for k in (K, inv))
        points = backproject(flat(depth_t, 3), inv_K)
        grid, z = project(points, K_all, T)
        sources = self.index.gather(frames, src, dim=0).unsqueeze(0).expand(s_, -1, -1, -1, -1, -1)
        need_diff = has_src_depth and (use["d"] or use["w"])
        if need_diff:  # the other view's depth rides along in the same grid_sample
            sources = torch.cat([sources, self.index.gather(depth, [pos[frame_ids[i]] for i in src], dim=1)], dim=3)
        sampled = sample(flat(sources, 3), grid).reshape(s_, v_, b, -1, height, width)
        shape = (s_, v_, b, 1, height, width)
        valid = valid_mask(grid, z).reshape(shape)
        diff, weight = None, torch.ones_like(valid)
        if need_diff:
            diff = structure_difference(z.reshape(shape), sampled[:, :, :, 3:])
            if use["w"]:
                weight = 1.0 - diff.detach()
        pe = None
        if use["p"]:
            targets = self.index.gather(frames, tgt, dim=0).unsqueeze(0).expand(s_, -1, -1, -1, -1, -1)
            pe = photometric_error(flat(sampled[:, :, :, :3], 3), flat(targets, 3), self.cfg.ssim_weight)
            pe = pe.reshape(shape)
        return _Views(pe, valid, weight, diff, grid.reshape(s_, v_, b, height, width, 2), n_fwd)

    def _identity_errors(self, frames, frame_ids, n_fwd: int) -> torch.Tensor:
        """pe(source, target) without warping (1, V, B, 1, H, W), for the auto-mask: each reverse view uses its
        source's identity error too (pe is symmetric)."""
        t = frames[frame_ids.index(0)]
        srcs = self.index.gather(frames, [i for i, fid in enumerate(frame_ids) if fid != 0], dim=0)
        ident = photometric_error(flat(srcs, 2), t.repeat(n_fwd, 1, 1, 1), self.cfg.ssim_weight)
        ident = ident.reshape(n_fwd, *t.shape[:1], 1, *t.shape[-2:])
        return (torch.cat([ident, ident]) if self.cfg.bidirectional else ident).unsqueeze(0)

    # -- loss terms -----------------------------------------------------------------------------------
    def _directional(self, err, valid, weight, identity, n_fwd: int):
        """Decision 3 on stacked views (N, V, B, 1, h, w): forward min-reprojection over the first ``n_fwd``
        views, each reverse view on its own, then (forward + mean of reverse) / 2. Returns the loss per N and
        the forward mask (N, B, 1, h, w)."""
        n, v = err.shape[:2]
        ident = identity.expand(n, *identity.shape[1:]) if identity is not None else None
        fwd, mask = self._reprojection(err[:, :n_fwd], valid[:, :n_fwd], weight[:, :n_fwd],
                                       ident[:, :n_fwd] if ident is not None else None)
        if v == n_fwd:
            return fwd, mask

        def one_each(x):  # every reverse view its own min-reprojection over one candidate
            return x[:, n_fwd:].reshape(-1, 1, *x.shape[2:])

        rev, _ = self._reprojection(one_each(err), one_each(valid), one_each(weight),
                                    one_each(ident) if ident is not None else None)
        return 0.5 * (fwd + rev.reshape(n, v - n_fwd).mean(1)), mask

    def _reprojection(self, err, valid, weight, ident):
        """Per-pixel min over the candidates of dim 1 (or valid average), auto-mask, structure weight; mean over
        pixels. ``err``, ``valid``, ``weight``: (N, C, B, 1, h, w); ``ident``: the identity errors alike, or None.
        Returns (loss (N,), mask (N, B, 1, h, w): the pixels that contribute)."""
        if not self.cfg.exclude_out_of_view:
            # monodepth2: a sample that leaves the source keeps its border-padded error. Zeroing it would
            # reward depths that push border pixels out of view (a degenerate minimum seen in training).
            valid = torch.ones_like(valid)
        if self.cfg.min_reprojection and not self.cfg.exclude_out_of_view:  # every candidate counts
            best, idx = err.min(dim=1, keepdim=True)
            wbest, mask = weight.gather(1, idx), torch.ones_like(best)
        elif self.cfg.min_reprojection:
            best, idx = torch.where(valid > 0, err, torch.full_like(err, _OUTSIDE)).min(dim=1, keepdim=True)
            wbest, mask = weight.gather(1, idx), valid.gather(1, idx)
        else:
            count = valid.sum(dim=1, keepdim=True).clamp(min=1.0)
            best = (err * valid).sum(dim=1, keepdim=True) / count
            wbest = (weight * valid).sum(dim=1, keepdim=True) / count
            mask = (valid.sum(dim=1, keepdim=True) > 0).to(err.dtype)
        if ident is not None:
            ident = ident.min(dim=1, keepdim=True)[0] if self.cfg.min_reprojection else ident.mean(1, keepdim=True)
            ident = ident + torch.randn_like(ident) * 1e-5
            mask = mask * (best < ident).to(err.dtype)
        loss = (mask * wbest * best).flatten(1).mean(1)
        return loss, mask.squeeze(1)

    @staticmethod
    def _depth_consistency_term(views: _Views) -> torch.Tensor:
        """L_d (decision 4): masked mean per view and scale, averaged over both."""
        return masked_mean(views.diff, views.valid, start_dim=2).mean()

    @staticmethod
    def _smoothness_term(disps: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """L_s (decision 6): each scale's native disparity against the target resized (area) to it, / 2^s."""
        smooth = target.new_zeros(())
        for s, disp in enumerate(disps):
            image = target if disp.shape[-2:] == target.shape[-2:] else F.interpolate(
                target, size=disp.shape[-2:], mode="area"
            )
            smooth = smooth + edge_aware_smoothness(disp, image) / (2**s)
        return smooth / len(disps)

    def _feature_term(self, pred: _Prediction, frame_ids, views: _Views) -> torch.Tensor:
        """L_feat at scale 0 (decision 5): warped finest encoder (or decoder) features, weighted and masked like
        L_p, detached; every view in one ``grid_sample``."""
        key = "enc" if self.cfg.feature_source == "encoder" else "dec"
        finest = pred.frame_major[key][0].detach().float()  # (F'*B, C, h, w), the net's memory layout
        b, (fh, fw) = finest.shape[0] // len(pred.predicted), finest.shape[-2:]
        target = frame_ids.index(0)
        scale = finest[target * b:(target + 1) * b].abs().mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-6)
        layout, _ = self._view_layout(frame_ids)
        v_ = len(layout)
        rows = [pred.predicted.index(fid) for fid in frame_ids]  # frame_ids position -> row block

        def stacked(frames):  # the views' frames, batch-stacked, each divided by the target's mean |f|
            blocks = torch.cat([finest[rows[f] * b:(rows[f] + 1) * b] for f in frames])
            return blocks / scale.repeat(len(frames), 1, 1, 1)

        grid = resize_grid(flat(views.grid[0], 2), fh, fw)
        f_src, f_tgt = stacked([s for _, s, _ in layout]), stacked([t for t, _, _ in layout])
        small = (1, v_, b, 1, fh, fw)
        err = (sample(f_src, grid) - f_tgt).abs().mean(dim=1, keepdim=True).reshape(small)
        ident = (f_src - f_tgt).abs().mean(dim=1, keepdim=True).reshape(small) if self._use["mask"] else None
        valid = F.interpolate(flat(views.valid[0], 2), size=(fh, fw), mode="nearest").reshape(small)
        weight = F.interpolate(flat(views.weight[0], 2), size=(fh, fw), mode="bilinear", align_corners=False)
        loss, _ = self._directional(err, valid, weight.reshape(small), ident, views.n_fwd)
        return loss[0]
