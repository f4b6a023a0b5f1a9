"""Tests for deeplab_utils.metrics: SegmentationMetrics against NumPy and hand computations."""

import math

import numpy as np
import pytest
import torch

from deeplab_utils.metrics import (
    IGNORE_INDEX,
    SegmentationMetrics,
    boundary_band,
    mean_iou,
    miou_interval,
    per_image_confusion,
    trimap_miou,
)


def numpy_confusion(target: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Independent oracle: a confusion matrix (rows target, cols prediction) by a Python loop."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    for t, p in zip(target.ravel(), pred.ravel(), strict=True):
        if t != 255:
            cm[t, p] += 1
    return cm


def numpy_scores(cm: np.ndarray) -> dict:
    """Independent oracle: accuracy, IoU and Dice from a confusion matrix with NumPy."""
    cm = cm.astype(np.float64)
    tp = np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = tp / (cm.sum(0) + cm.sum(1) - tp)
        dice = 2 * tp / (cm.sum(0) + cm.sum(1))
    return {"acc": tp.sum() / cm.sum(), "iou": iou, "dice": dice}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("use_logits", [True, False])
def test_matches_numpy_oracle_over_several_updates(batch, use_logits):
    """Accumulating 3 random batches with ignored pixels equals the NumPy oracle to 1e-6."""
    num_classes = 5
    metrics = SegmentationMetrics(num_classes)
    targets, preds = [], []
    for _ in range(3):
        target = torch.randint(0, num_classes, (batch, 9, 11))
        target[torch.rand(batch, 9, 11) < 0.2] = 255
        logits = torch.randn(batch, num_classes, 9, 11)
        pred = logits.argmax(1)
        metrics.update(logits if use_logits else pred, target)
        targets.append(target.numpy())
        preds.append(pred.numpy())
    cm = numpy_confusion(np.concatenate(targets), np.concatenate(preds), num_classes)
    ref = numpy_scores(cm)
    result = metrics.compute()
    np.testing.assert_array_equal(result["confusion_matrix"].numpy(), cm)
    np.testing.assert_allclose(result["iou"].numpy(), ref["iou"], atol=1e-6)
    np.testing.assert_allclose(result["dice"].numpy(), ref["dice"], atol=1e-6)
    assert result["miou"] == pytest.approx(np.nanmean(ref["iou"]), abs=1e-6)
    assert result["mean_dice"] == pytest.approx(np.nanmean(ref["dice"]), abs=1e-6)
    assert result["pixel_accuracy"] == pytest.approx(ref["acc"], abs=1e-6)


def test_hand_computed_three_class_example():
    """A 2x2 / 3-class example gives the IoU, Dice and mIoU worked out by hand."""
    target = torch.tensor([[[0, 1], [2, 2]]])
    pred = torch.tensor([[[0, 2], [2, 1]]])
    metrics = SegmentationMetrics(3)
    metrics.update(pred, target)
    result = metrics.compute()
    # class 0: TP 1, FP 0, FN 0 -> IoU 1;  class 1: TP 0, FP 1, FN 1 -> IoU 0
    # class 2: TP 1, FP 1, FN 1 -> IoU 1/3; mIoU = (1 + 0 + 1/3) / 3 = 4/9
    torch.testing.assert_close(result["iou"], torch.tensor([1.0, 0.0, 1 / 3], dtype=torch.float64))
    torch.testing.assert_close(result["dice"], torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64))
    assert result["miou"] == pytest.approx(4 / 9)
    assert result["mean_dice"] == pytest.approx(0.5)
    assert result["pixel_accuracy"] == pytest.approx(0.5)
    expected_cm = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    assert torch.equal(result["confusion_matrix"], expected_cm)


def test_absent_classes_are_excluded_from_the_mean():
    """A class absent from both prediction and target has NaN IoU and is left out of mIoU."""
    target = torch.tensor([[[0, 0], [1, 1]]])
    pred = torch.tensor([[[0, 1], [1, 1]]])
    metrics = SegmentationMetrics(4)
    metrics.update(pred, target)
    result = metrics.compute()
    assert math.isnan(result["iou"][2]) and math.isnan(result["iou"][3])
    assert math.isnan(result["dice"][3])
    # class 0: 1 / 2; class 1: 2 / 3
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_ignored_pixels_are_skipped():
    """Pixels whose target is 255 are not counted, whatever is predicted there."""
    target = torch.tensor([[[0, 255], [1, 255]]])
    pred = torch.tensor([[[0, 1], [1, 0]]])
    metrics = SegmentationMetrics(2)
    metrics.update(pred, target)
    assert torch.equal(metrics.compute()["confusion_matrix"], torch.tensor([[1, 0], [0, 1]]))
    assert metrics.compute()["miou"] == 1.0


def test_no_pixels_counted_gives_nan():
    """Before any update (or with every target ignored) the scores are NaN, not 0 or 1."""
    result = SegmentationMetrics(3).compute()
    assert result["confusion_matrix"].sum() == 0
    assert math.isnan(result["miou"]) and math.isnan(result["pixel_accuracy"])
    metrics = SegmentationMetrics(3)
    metrics.update(torch.zeros(1, 2, 2, dtype=torch.long), torch.full((1, 2, 2), 255))
    assert math.isnan(metrics.compute()["mean_dice"])


def test_sync_is_noop_without_distributed():
    """sync() leaves the counts unchanged when torch.distributed is not initialised."""
    metrics = SegmentationMetrics(2)
    metrics.update(torch.tensor([[[0, 1]]]), torch.tensor([[[0, 0]]]))
    before = metrics.confusion_matrix.clone()
    metrics.sync()
    assert torch.equal(metrics.confusion_matrix, before)


def test_bad_inputs_raise():
    """Bad shapes, channel counts, dtypes and labels raise errors naming the bad value."""
    metrics = SegmentationMetrics(3)
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\).*shape \(1, 4, 4, 4\)"):
        metrics.update(torch.randn(1, 4, 4, 4), target)
    with pytest.raises(ValueError, match=r"integer labels \(B, H, W\), got dtype torch.float32"):
        metrics.update(torch.zeros(1, 4, 4), target)
    with pytest.raises(ValueError, match=r"\(1, 4, 5\)"):
        metrics.update(torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="float32"):
        metrics.update(torch.randn(1, 3, 4, 4), target.float())
    bad_target = target.clone()
    bad_target[0, 0, 0] = 9
    with pytest.raises(ValueError, match="got 9"):
        metrics.update(torch.randn(1, 3, 4, 4), bad_target)
    with pytest.raises(ValueError, match="got -2"):
        metrics.update(torch.full((1, 4, 4), -2), target)
    with pytest.raises(ValueError, match="num_classes.*0"):
        SegmentationMetrics(0)
    assert metrics.confusion_matrix.sum() == 0  # failed updates counted nothing


def test_mean_iou_of_the_notebook_example_by_hand() -> None:
    """mean_iou on notebook 05's 4x4 example: background 5/8, cat 3/6, dog 3/5 -> 0.575; a
    fourth class absent from both masks is left out of the mean."""
    from deeplab_utils.metrics import mean_iou

    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 255], [0, 2, 2, 2]]])
    pred = torch.tensor([[[0, 0, 1, 0], [0, 1, 1, 1], [0, 2, 1, 2], [0, 0, 2, 2]]])
    expected = (5 / 8 + 3 / 6 + 3 / 5) / 3
    assert mean_iou(pred, target, 3) == pytest.approx(expected)
    assert mean_iou(pred, target, 4) == pytest.approx(expected)


# --- trimap (boundary-band) mIoU, against a NumPy oracle written from the definition ---


def _band_oracle(target: np.ndarray, width: int) -> np.ndarray:
    """Pixels at Chebyshev distance <= width of a pixel whose label differs from a 4-neighbour."""
    _, h, w = target.shape
    edge = np.zeros(target.shape, dtype=bool)
    for b, y, x in np.ndindex(*target.shape):
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            ny, nx = y + dy, x + dx
            if 0 <= ny < h and 0 <= nx < w and target[b, ny, nx] != target[b, y, x]:
                edge[b, y, x] = True
    band = np.zeros_like(edge)
    for b, y, x in zip(*np.nonzero(edge), strict=True):
        band[b, max(0, y - width) : y + width + 1, max(0, x - width) : x + width + 1] = True
    return band


def _miou_oracle(pred: np.ndarray, target: np.ndarray, scored: np.ndarray, c: int) -> float:
    ious = []
    for k in range(c):
        tp = np.sum((pred == k) & (target == k) & scored)
        union = np.sum(((pred == k) | (target == k)) & scored)
        if union:
            ious.append(tp / union)
    return float(np.mean(ious)) if ious else float("nan")


def test_trimap_miou_by_hand():
    """Left half class 0, right half class 1, all predicted 0. Width 0 scores the two columns
    beside the edge: class 0 IoU 6/12, class 1 IoU 0, mIoU 0.25 (the whole image: 0.25 too;
    width 1 scores columns 1-4: class 0 IoU 12/24, class 1 0)."""
    target = torch.zeros(1, 6, 6, dtype=torch.long)
    target[..., 3:] = 1
    pred = torch.zeros(1, 6, 6, dtype=torch.long)
    assert trimap_miou(pred, target, 2, 0) == pytest.approx(0.25)
    assert boundary_band(target, 0)[0].nonzero()[:, 1].unique().tolist() == [2, 3]
    assert boundary_band(target, 1)[0].nonzero()[:, 1].unique().tolist() == [1, 2, 3, 4]
    perfect_inside = target.clone()
    perfect_inside[..., 0] = 1  # wrong only far from the edge: the band does not see it
    assert trimap_miou(perfect_inside, target, 2, 1) == 1.0
    assert mean_iou(perfect_inside, target, 2) < 1.0


@pytest.mark.parametrize("width", [0, 1, 2, 5])
def test_trimap_miou_matches_numpy(width):
    """Random scenes with ignore pixels, labels or logits: the oracle's band and mIoU."""
    g = torch.Generator().manual_seed(width)
    target = torch.randint(0, 3, (2, 1, 5, 6), generator=g)
    target = torch.nn.functional.interpolate(target.float(), size=(15, 18)).long()[:, 0]
    target[0, :2, :3] = IGNORE_INDEX  # a void patch: its border is a boundary, itself unscored
    logits = torch.randn(2, 3, 15, 18, generator=g)
    t = target.numpy()
    scored = _band_oracle(t, width) & (t != IGNORE_INDEX)
    expected = _miou_oracle(logits.argmax(1).numpy(), t, scored, 3)
    assert np.array_equal(boundary_band(target, width).numpy(), _band_oracle(t, width))
    assert trimap_miou(logits, target, 3, width) == pytest.approx(expected)
    assert trimap_miou(logits.argmax(1), target, 3, width) == pytest.approx(expected)


def test_trimap_miou_grows_to_the_full_miou():
    """A band wider than the image scores every labelled pixel: the plain mIoU."""
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 4, (3, 12, 12), generator=g)
    pred = torch.randint(0, 4, (3, 12, 12), generator=g)
    assert trimap_miou(pred, target, 4, 12) == pytest.approx(mean_iou(pred, target, 4))


@pytest.mark.parametrize("width", [-1, 1.5, True, "2"])
def test_trimap_miou_rejects_a_bad_width(width):
    """A width that is no count of pixels gets one clear line."""
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="width must be an int >= 0"):
        trimap_miou(target, target, 2, width)


def test_trimap_miou_checks_the_target_like_the_other_metrics():
    """A float target or a mismatched shape is refused, as SegmentationMetrics refuses it."""
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    with pytest.raises(TypeError):
        trimap_miou(pred, torch.zeros(1, 4, 4), 2, 1)
    with pytest.raises(ValueError):
        trimap_miou(pred, torch.zeros(1, 4, 5, dtype=torch.long), 2, 1)


def test_per_image_confusion_matches_a_numpy_count_per_image():
    """Each image's matrix counts its own (target, prediction) pairs, ignored pixels left out;
    their sum is the set's matrix."""
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 3, (4, 5, 6), generator=g)
    targets = torch.randint(0, 3, (4, 5, 6), generator=g)
    targets[0, 0, :3] = IGNORE_INDEX
    got = per_image_confusion(preds, targets, 3)
    for n in range(4):
        t, p = targets[n].numpy().ravel(), preds[n].numpy().ravel()
        expected = np.zeros((3, 3), dtype=np.int64)
        for a, b in zip(t[t != IGNORE_INDEX], p[t != IGNORE_INDEX], strict=True):
            expected[a, b] += 1
        np.testing.assert_array_equal(got[n].numpy(), expected)
    whole = SegmentationMetrics(3)
    whole.update(preds, targets)
    assert torch.equal(got.sum(dim=0), whole.confusion_matrix)
    with pytest.raises(ValueError, match="integer labels"):
        per_image_confusion(preds.float(), targets, 3)
    with pytest.raises(ValueError):  # a class >= num_classes must not spill into the next image
        per_image_confusion(preds, torch.where(targets == 2, 3, targets), 3)
    with pytest.raises(ValueError, match=r"predicted labels must lie in \[0, 3\)"):
        per_image_confusion(preds + 1, targets, 3)
    small = per_image_confusion(preds, targets.to(torch.uint8), 3)  # no overflow in t * C + p
    assert torch.equal(small, got)


def _numpy_miou(cm):
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore"):
        return np.nanmean(tp / union)


def test_miou_interval_is_the_percentile_bootstrap_over_images():
    """The interval equals a NumPy bootstrap over the same draws of images (torch's generator,
    seed 0), for one score and for a paired difference; identical scorings differ by exactly 0,
    and the interval holds the full set's own score."""
    g = torch.Generator().manual_seed(1)
    targets = torch.randint(0, 3, (20, 4, 4), generator=g)
    good = torch.where(torch.rand(20, 4, 4, generator=g) < 0.8, targets, (targets + 1) % 3)
    worse = torch.where(torch.rand(20, 4, 4, generator=g) < 0.6, targets, (targets + 1) % 3)
    a, b = per_image_confusion(good, targets, 3), per_image_confusion(worse, targets, 3)
    draws = torch.randint(20, (200, 20), generator=torch.Generator().manual_seed(0)).numpy()
    one = [_numpy_miou(a.numpy()[d].sum(0)) for d in draws]
    diff = [one[i] - _numpy_miou(b.numpy()[d].sum(0)) for i, d in enumerate(draws)]
    low, high = miou_interval(a, resamples=200)
    assert (low, high) == pytest.approx(tuple(np.quantile(one, [0.025, 0.975])))
    assert low <= _numpy_miou(a.numpy().sum(0)) <= high
    got = miou_interval(a, b, resamples=200)
    assert got == pytest.approx(tuple(np.quantile(diff, [0.025, 0.975])))
    assert got[0] > 0  # 80 % right against 60 %: the difference holds on every resample
    assert miou_interval(a, a, resamples=50) == (0.0, 0.0)
    with pytest.raises(ValueError, match="at least one image"):
        miou_interval(a[:0])
