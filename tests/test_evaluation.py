"""Evaluation: metrics by hand, Garg crop, alignment, protocol masks, AdaSearch, evaluate_model."""
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from fadepth.evaluation import (
    METRICS,
    constant_depth_metrics,
    depth_metrics,
    evaluate_depths,
    evaluate_model,
    format_header,
    format_row,
    garg_crop_mask,
    valid_mask,
)


def _disp_for(depth):
    """Sigmoid disparity whose eq.-12 depth is `depth`."""
    return ((1.0 / np.asarray(depth, dtype=np.float64) - 0.01) / 10.0).astype(np.float32)


def test_metrics_hand_computed():
    gt = np.array([1.0, 2.0, 4.0])
    pred = np.array([1.1, 1.8, 5.0])
    m = depth_metrics(gt, pred)
    assert m["abs_rel"] == pytest.approx((0.1 + 0.1 + 0.25) / 3)
    assert m["sq_rel"] == pytest.approx((0.01 + 0.02 + 0.25) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(0.35))
    logs = [math.log(1.1), math.log(0.9), math.log(1.25)]
    assert m["rmse_log"] == pytest.approx(math.sqrt(sum(v * v for v in logs) / 3))
    assert m["a1"] == pytest.approx(2 / 3)  # 5/4 = 1.25 is not < 1.25
    assert m["a2"] == 1.0 and m["a3"] == 1.0


def test_garg_crop_kitti_indices():
    mask = garg_crop_mask(375, 1242)
    rows, cols = np.where(mask)
    assert (rows.min(), rows.max() + 1) == (153, 371)
    assert (cols.min(), cols.max() + 1) == (44, 1197)
    assert mask.sum() == (371 - 153) * (1197 - 44)


def test_median_scaling_invariance_and_none():
    rng = np.random.default_rng(0)
    gts = [rng.uniform(2, 40, size=(20, 30)).astype(np.float32) for _ in range(3)]
    preds = [_disp_for(g / 3.0) for g in gts]
    m = evaluate_depths(preds, gts, "synthetic", align="median")
    assert m["abs_rel"] < 1e-5 and m["a1"] == 1.0
    assert m["median_ratio"] == pytest.approx(3.0, rel=1e-5) and m["ratio_std"] < 1e-5
    assert m["num_images"] == 3
    raw = evaluate_depths(preds, gts, "synthetic", align="none")
    assert raw["abs_rel"] == pytest.approx(2 / 3, rel=1e-4) and raw["median_ratio"] == 1.0


def test_disparity_is_resized_to_gt_shape():
    gt = np.full((40, 60), 10.0, dtype=np.float32)
    pred = _disp_for(np.full((10, 15), 2.0))
    m = evaluate_depths([pred], [gt], "eigen_benchmark")
    assert m["abs_rel"] < 1e-5 and m["median_ratio"] == pytest.approx(5.0, rel=1e-5)


def test_protocol_masks():
    gt = np.array([[0.0, 0.0005, 0.5, 79.0, 80.0, 150.0, 199.0, 250.0]], dtype=np.float32)
    expected = {
        "eigen_benchmark": [0, 1, 1, 1, 1, 1, 1, 1],
        "synthetic": [0, 1, 1, 1, 1, 1, 1, 1],
        "ddad": [0, 1, 1, 1, 1, 1, 1, 0],
    }
    for protocol, want in expected.items():
        assert valid_mask(gt, protocol).astype(int)[0].tolist() == want, protocol
    # eigen: 1e-3 < gt < 80 and inside the crop
    big = np.full((375, 1242), 10.0, dtype=np.float32)
    big[200, 100] = 80.0
    big[201, 100] = 0.0005
    m = valid_mask(big, "eigen")
    assert m.sum() == garg_crop_mask(375, 1242).sum() - 2
    assert not m[0, 0] and not m[200, 100] and m[202, 100]


def test_prediction_cap_per_protocol():
    gt = np.full((4, 4), 50.0, dtype=np.float32)
    gt[0, 0] = 150.0
    pred = _disp_for(np.where(gt > 100, 150.0, 50.0))  # exact depths, ratio 1
    eb = evaluate_depths([pred], [gt], "eigen_benchmark", align="none")
    ddad = evaluate_depths([pred], [gt], "ddad", align="none")
    assert ddad["abs_rel"] < 1e-5  # cap 200 keeps 150
    assert eb["abs_rel"] == pytest.approx((70.0 / 150.0) / 16, rel=1e-4)  # 150 clamped to 80
    with pytest.raises(ValueError):
        evaluate_depths([pred], [gt], "nope")


def test_adasearch_not_worse_than_median():
    rng = np.random.default_rng(1)
    gts = [rng.uniform(2, 60, size=(16, 24)).astype(np.float32) for _ in range(4)]
    preds = [_disp_for(g * rng.lognormal(0.0, 0.3, size=g.shape) * 0.2) for g in gts]
    med = evaluate_depths(preds, gts, "synthetic", align="median")
    ada = evaluate_depths(preds, gts, "synthetic", align="adasearch")
    assert ada["abs_rel"] <= med["abs_rel"] + 1e-12
    assert ada["median_ratio"] != med["median_ratio"]


def test_format_row():
    metrics = {name: 0.1 * (i + 1) for i, name in enumerate(METRICS)}
    row = format_row(metrics, header=False)
    assert format_row(metrics).splitlines() == [format_header(), row]
    assert row.count("&") == 6 and row.endswith(r"\\")
    assert row.split("&")[0].strip() == "0.100" and row.split("&")[6].strip().startswith("0.700")


class _ConstNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.level = nn.Parameter(torch.tensor(float(_disp_for(depth))))

    def forward(self, x):
        b, _, h, w = x.shape
        return {"disp": [self.level.expand(b, 1, h // 2, w // 2)], "enc": [], "dec": []}


class _TestSet(list):
    protocol = "synthetic"


def test_evaluate_model_over_test_contract():
    rng = np.random.default_rng(2)
    items = _TestSet(
        {"image": torch.rand(3, 16, 32), "gt": np.full((24, 48), d, dtype=np.float32), "id": str(i)}
        for i, d in enumerate(rng.uniform(5, 30, size=5))
    )
    net = _ConstNet(4.0).train()
    m = evaluate_model(net, items, align="median", device="cpu", batch_size=2)
    assert net.training  # mode restored
    assert m["abs_rel"] < 1e-5 and m["num_images"] == 5
    m2 = evaluate_model(net, items, align="none", device="cpu", batch_size=2)
    assert m2["abs_rel"] > 0.1


def test_constant_depth_metrics_is_what_a_collapsed_net_scores():
    rng = np.random.default_rng(3)
    ramp = np.linspace(4, 40, 48, dtype=np.float32)[None].repeat(24, 0)  # depth varies inside each image
    items = _TestSet({"image": torch.rand(3, 16, 32), "gt": ramp * s, "id": str(i)}
                     for i, s in enumerate(rng.uniform(0.5, 2, size=3)))
    constant = constant_depth_metrics(items)
    collapsed = evaluate_model(_ConstNet(7.0), items, align="median", device="cpu")
    assert constant["abs_rel"] == pytest.approx(collapsed["abs_rel"], rel=1e-6) and constant["abs_rel"] > 0.3
    flat = _TestSet({"image": torch.rand(3, 16, 32), "gt": np.full((24, 48), d, np.float32), "id": "f"} for d in (5, 9))
    assert constant_depth_metrics(flat)["abs_rel"] < 1e-6  # a constant scene is predicted exactly
