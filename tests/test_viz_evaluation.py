"""Tests for notebook 08's figures in deeplab_utils.viz (per-class IoU, speed, segmentation)."""

import warnings

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from deeplab_utils import viz
from deeplab_utils.data import SHAPES_CLASSES, SHAPES_PALETTE


def test_plot_per_class_iou_bars_and_miou_line():
    """One bar per class at its IoU (NaN drawn as an empty bar) and a dashed line at the mIoU."""
    iou = [0.9, 0.5, float("nan"), 0.2, 0.4]
    fig = viz.plot_per_class_iou(
        iou, SHAPES_CLASSES, SHAPES_PALETTE, pixel_share=[0.7] + [0.075] * 4
    )
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([0.9, 0.5, 0.0, 0.2, 0.4])
    assert ax.lines[0].get_ydata()[0] == pytest.approx((0.9 + 0.5 + 0.2 + 0.4) / 4)
    assert ax.get_xticklabels()[0].get_text() == "background\n70% of pixels"
    plt.close(fig)


def test_plot_per_class_iou_rejects_wrong_length():
    """An IoU per class of the wrong length raises a ValueError giving both counts."""
    with pytest.raises(ValueError, match="5 classes, got 3"):
        viz.plot_per_class_iou(
            [0.1, 0.2, 0.3], SHAPES_CLASSES, SHAPES_PALETTE, pixel_share=[0.2] * 5
        )


def test_plot_trimap_curve_and_whole_image_line():
    """One point per band width at its mIoU, and a dashed line at the whole-image mIoU."""
    fig = viz.plot_trimap([1, 2, 4], [0.3, 0.4, 0.5], overall=0.7)
    curve, whole = fig.axes[0].get_lines()
    np.testing.assert_allclose(curve.get_xydata(), [[1, 0.3], [2, 0.4], [4, 0.5]])
    np.testing.assert_allclose(whole.get_ydata(), [0.7, 0.7])
    assert whole.get_linestyle() == "--"
    plt.close(fig)


def test_plot_ablations_draws_each_seeds_difference_and_the_papers():
    """Left: a dot per seed at its difference, a bar at their mean, a diamond at the paper's
    difference (points / 100); right: one trimap line per network, in the summary's order."""
    summary = {
        "DeepLabV3+": {"delta": [0.0, 0.0], "trimap": {1: 0.5, 4: 0.6}},
        "no decoder": {"delta": [-0.3, -0.2], "trimap": {1: 0.2, 4: 0.3}},
    }
    fig = viz.plot_ablations(summary, {"no decoder": (-1.64, None, "Table 3")})
    left, right = fig.axes
    dots, diamond = left.get_lines()[:2]
    np.testing.assert_allclose(dots.get_xdata(), [-0.3, -0.2])
    np.testing.assert_allclose(diamond.get_xdata(), [-0.0164])
    assert left.patches[0].get_width() == pytest.approx(-0.25)  # the mean's bar
    assert [t.get_text() for t in left.get_yticklabels()] == ["no decoder"]
    lines = right.get_lines()  # the reference drawn last, on top
    np.testing.assert_allclose(lines[0].get_xydata(), [[1, 0.2], [4, 0.3]])
    np.testing.assert_allclose(lines[1].get_xydata(), [[1, 0.5], [4, 0.6]])
    assert [t.get_text() for t in right.get_legend().get_texts()] == ["no decoder", "DeepLabV3+"]
    assert sorted(t.get_text() for t in left.get_legend().get_texts()) == [
        "mean over seeds", "one seed", "the paper (PASCAL VOC)"]  # fmt: skip
    plt.close(fig)


def test_plot_inference_speed_one_line_per_setting():
    """Each setting becomes a line through its times, and a dashed one shows what the work
    predicts (x4 per doubling of the side, from the first time)."""
    fig = viz.plot_inference_speed([64, 128], {"plain": [1.0, 3.0], "flip": [2.0, 6.0]})
    lines = fig.axes[0].lines
    assert [list(line.get_ydata()) for line in lines] == [[1.0, 3.0], [2.0, 6.0], [1.0, 4.0]]
    assert lines[-1].get_linestyle() == "--"
    assert "log scale" in fig.axes[0].get_ylabel()
    plt.close(fig)


def test_plot_inference_speed_labels_several_ticks_within_a_decade():
    """Times within one decade (16 to 140 ms) still get several labelled ticks on the log axis."""
    fig = viz.plot_inference_speed(
        [64, 128, 256], {"plain": [16.0, 26.0, 70.0], "flip": [30, 50, 140]}
    )
    ax = fig.axes[0]
    fig.canvas.draw()
    low, high = ax.get_ylim()
    shown = [t.get_text() for t in ax.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert shown[:3] == ["20", "50", "100"]  # (and 200, 500: the x4 line reaches 256 ms)
    plt.close(fig)


def test_show_segmented_image_panels():
    """Image, colourised labels and outlines are shown; (H, W, 3), (3, H, W) and a float image in
    [0, 1] agree."""
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    rgb.setflags(write=False)  # like np.asarray(PIL image): must not trigger a torch warning
    labels = torch.zeros(6, 8, dtype=torch.int64)
    labels[:, 4:] = 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = viz.show_segmented_image(rgb, labels, SHAPES_PALETTE, SHAPES_CLASSES)
    shown = [ax.images[0].get_array() for ax in fig.axes[:3]]
    assert np.array_equal(shown[0], rgb)
    assert shown[1][0, 5].tolist() == list(SHAPES_PALETTE[2])
    other = viz.show_segmented_image(
        torch.from_numpy(rgb.copy()).permute(2, 0, 1), labels, SHAPES_PALETTE, SHAPES_CLASSES
    )
    assert np.array_equal(other.axes[2].images[0].get_array(), shown[2])
    floats = viz.show_segmented_image(rgb / 255, labels, SHAPES_PALETTE, SHAPES_CLASSES)
    assert np.array_equal(floats.axes[0].images[0].get_array(), shown[0])
    plt.close("all")
