"""Tests for the model figures (notebooks 02-04) in deeplab_utils.viz."""

import matplotlib

matplotlib.use("Agg")  # headless: no display in CI

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test leaves no figure open."""
    yield
    plt.close("all")


# --- notebook 04: decoder and full model ---


def test_decoder_costs_stacks_components_per_model() -> None:
    """One bar per model in each panel, stacked from one patch per component."""
    from deeplab_utils.viz import plot_decoder_costs

    params = {
        "V3": {"backbone": 2e7, "aspp": 1e7},
        "V3+": {"backbone": 2e7, "aspp": 1e7, "decoder": 1e6},
    }
    macs = {
        "V3": {"backbone": 3e9, "aspp": 1e9},
        "V3+": {"backbone": 3e9, "aspp": 1e9, "decoder": 1e9},
    }
    fig = plot_decoder_costs(params, macs, input_size=(129, 129))
    ax_params, ax_macs = fig.axes
    assert len(ax_params.patches) == 3 * 2  # 3 components x 2 models
    tops = sorted(p.get_y() + p.get_height() for p in ax_macs.patches)
    assert tops[-1] == pytest.approx(5.0)  # 3 + 1 + 1 billion for V3+
    assert "129×129" in ax_macs.get_title()


def test_decoder_upsampling_marks_wrong_pixels_red() -> None:
    """Pixels that differ from the mask are red; the IoU is in the title."""
    from deeplab_utils.viz import plot_decoder_upsampling

    mask = np.zeros((8, 8), dtype=bool)
    mask[2:6, 2:6] = True
    coarse = mask.copy()
    coarse[2, 2] = False  # one wrong pixel
    fig = plot_decoder_upsampling(mask, {"x4": torch.from_numpy(coarse)}, scores={"x4": 0.9375})
    picture = fig.axes[1].images[0].get_array()
    red = (picture[..., 0] > 0.5) & (picture[..., 1] < 0.5)
    assert red.sum() == 1 and red[2, 2]
    assert "0.938" in fig.axes[1].get_title()
