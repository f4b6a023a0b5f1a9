"""Tests for the notebook-05 self-checks: check_dice_bce_loss, check_iou_loss, check_miou."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeplab_utils.checks import (
    CheckFailed,
    check_dice_bce_loss,
    check_dice_ce_loss,
    check_iou_loss,
    check_miou,
)

# --- learner-style binary losses, written out independently of deeplab_utils.losses ---


def _soft_sums(logits, target):
    target = target.reshape(logits.shape).float()
    probs = torch.sigmoid(logits)
    return probs, target, (probs * target).sum(), probs.sum(), target.sum()


class GoodDiceBCE(nn.Module):
    """A correct DiceBCE loss without ignore_index (the check must still pass)."""

    def __init__(self, smooth=1.0):
        super().__init__()
        self.smooth = smooth

    def forward(self, logits, target):
        _, target, inter, p_sum, g_sum = _soft_sums(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return bce + 1 - (2 * inter + self.smooth) / (p_sum + g_sum + self.smooth)


class GoodDiceBCEWithIgnore(nn.Module):
    """A correct DiceBCE loss that masks ignored pixels."""

    def __init__(self, smooth=1.0, ignore_index=255):
        super().__init__()
        self.smooth, self.ignore_index = smooth, ignore_index

    def forward(self, logits, target):
        target = target.reshape(logits.shape).float()
        valid = (target != self.ignore_index).float()
        target = target * valid
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        bce = (bce * valid).sum() / valid.sum()
        probs = torch.sigmoid(logits) * valid
        inter = (probs * target).sum()
        return bce + 1 - (2 * inter + self.smooth) / (probs.sum() + target.sum() + self.smooth)


class DiceWithoutFactorTwo(GoodDiceBCE):
    def forward(self, logits, target):
        _, target, inter, p_sum, g_sum = _soft_sums(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return bce + 1 - (inter + self.smooth) / (p_sum + g_sum + self.smooth)


class DiceWithoutBCE(GoodDiceBCE):
    def forward(self, logits, target):
        _, _, inter, p_sum, g_sum = _soft_sums(logits, target)
        return 1 - (2 * inter + self.smooth) / (p_sum + g_sum + self.smooth)


class DiceBCEIgnoringNothing(GoodDiceBCEWithIgnore):
    """Accepts ignore_index but treats 255 as a (clamped) foreground label."""

    def forward(self, logits, target):
        return GoodDiceBCE.forward(self, logits, target.clamp(max=1))


class SeedDiceBCE(GoodDiceBCE):
    """The seed's loss: BCE computed from sigmoid probabilities (log(0) for a confident pixel)."""

    def forward(self, logits, target):
        probs, target, inter, p_sum, g_sum = _soft_sums(logits, target)
        bce = F.binary_cross_entropy(probs, target)
        return bce + 1 - (2 * inter + self.smooth) / (p_sum + g_sum + self.smooth)


class DiceBCESmoothOne(GoodDiceBCE):
    """Writes the smoothing constant as 1 instead of self.smooth."""

    def forward(self, logits, target):
        _, target, inter, p_sum, g_sum = _soft_sums(logits, target)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        return bce + 1 - (2 * inter + 1) / (p_sum + g_sum + 1)


class DiceBCEDetached(GoodDiceBCE):
    """Right value, but the Dice term is computed from a detached copy (wrong gradient)."""

    def forward(self, logits, target):
        _, target, _, _, g_sum = _soft_sums(logits, target)
        probs = torch.sigmoid(logits).detach()
        dice = (2 * (probs * target).sum() + 1) / (probs.sum() + g_sum + 1)
        return F.binary_cross_entropy_with_logits(logits, target) + 1 - dice


class GoodIoU(nn.Module):
    """A correct binary soft-IoU loss."""

    def __init__(self, smooth=1.0, ignore_index=255):
        super().__init__()
        self.smooth, self.ignore_index = smooth, ignore_index

    def forward(self, logits, target):
        target = target.reshape(logits.shape).float()
        valid = (target != self.ignore_index).float()
        probs, target = torch.sigmoid(logits) * valid, target * valid
        inter = (probs * target).sum()
        return 1 - (inter + self.smooth) / (probs.sum() + target.sum() - inter + self.smooth)


class IoUUnionWithoutIntersection(GoodIoU):
    def forward(self, logits, target):
        _, _, inter, p_sum, g_sum = _soft_sums(logits, target)
        return 1 - (inter + self.smooth) / (p_sum + g_sum + self.smooth)


class IoUPerImage(GoodIoU):
    """Averages per-image IoUs instead of summing over the batch."""

    def forward(self, logits, target):
        probs, target, *_ = _soft_sums(logits, target)
        inter = (probs * target).sum((1, 2, 3))
        union = probs.sum((1, 2, 3)) + target.sum((1, 2, 3)) - inter
        return 1 - ((inter + self.smooth) / (union + self.smooth)).mean()


@pytest.mark.parametrize("cls", [GoodDiceBCE, GoodDiceBCEWithIgnore])
def test_dice_bce_check_passes_on_correct_losses(cls, capsys):
    """A correct DiceBCE loss, with or without ignore_index support, passes with one ✓ line."""
    check_dice_bce_loss(cls)
    assert capsys.readouterr().out.startswith("✓ check_dice_bce_loss")


@pytest.mark.parametrize(
    ("cls", "case"),
    [
        (DiceWithoutFactorTwo, "random logits"),
        (DiceWithoutBCE, "random logits"),
        (DiceBCEIgnoringNothing, "ignored pixels"),
        (DiceBCEDetached, "gradient"),
        (SeedDiceBCE, r"case 'confidently wrong pixels \(logits \+-30, \+-120\) \(loss value\)'"),
        (DiceBCESmoothOne, r"case 'smooth=0.5 \(loss value\)'.*self\.smooth"),
    ],
)
def test_dice_bce_check_catches_wrong_losses(cls, case):
    """Dice without the factor 2, no BCE, counted ignore pixels, a broken gradient, the seed's
    BCE from sigmoid probabilities and a hard-coded smoothing constant each fail."""
    with pytest.raises(CheckFailed, match=case):
        check_dice_bce_loss(cls)


def test_iou_check_passes_on_correct_loss(capsys):
    """A correct soft-IoU loss passes with one ✓ line."""
    check_iou_loss(GoodIoU)
    assert capsys.readouterr().out.startswith("✓ check_iou_loss")


@pytest.mark.parametrize(
    ("cls", "case"),
    [(IoUUnionWithoutIntersection, "random logits"), (IoUPerImage, "batch 2")],
)
def test_iou_check_catches_wrong_losses(cls, case):
    """A union that forgets to subtract the intersection, and per-image IoU, fail."""
    with pytest.raises(CheckFailed, match=case):
        check_iou_loss(cls)


class DiceBCEByIndexing(GoodDiceBCEWithIgnore):
    """Valid: the BCE written from the identity log(1 + e^x) - x t, the ignored pixels taken out
    by indexing instead of by multiplying with a mask."""

    def forward(self, logits, target):
        target = target.reshape(logits.shape).float()
        keep = target != self.ignore_index
        x, t = logits[keep], target[keep]  # (N_valid,)
        bce = (F.softplus(x) - x * t).mean()
        probs = torch.sigmoid(x)
        dice = (2 * (probs * t).sum() + self.smooth) / (probs.sum() + t.sum() + self.smooth)
        return bce + 1 - dice


class IoUFromDiceIdentity(GoodIoU):
    """Wrong: IoU = Dice / (2 - Dice), section 3's identity, applied to the *smoothed* Dice."""

    def forward(self, logits, target):
        target = target.reshape(logits.shape).float()
        valid = (target != self.ignore_index).float()
        probs, target = torch.sigmoid(logits) * valid, target * valid
        dice = (2 * (probs * target).sum() + self.smooth) / (
            probs.sum() + target.sum() + self.smooth
        )
        return 1 - dice / (2 - dice)


def test_dice_bce_check_passes_the_decisions_left_to_the_learner(capsys):
    """The exercise leaves the BCE's form and the masking to the learner: the softplus identity
    with indexing passes as the library call with a mask does."""
    check_dice_bce_loss(DiceBCEByIndexing)
    assert capsys.readouterr().out.startswith("✓ check_dice_bce_loss")


def test_iou_check_refuses_the_dice_identity_on_smoothed_scores():
    """Notebook 05 asks whether Dice = 2 IoU / (1 + IoU) survives smoothing: it does not, and
    the check names the identity on the first case."""
    with pytest.raises(CheckFailed, match="random logits.*unsmoothed scores only"):
        check_iou_loss(IoUFromDiceIdentity)


class DiceBCELogOnePlusExp(GoodDiceBCE):
    """BCE as log(1 + e^x) - x t: exact on paper, inf in float32 once e^x overflows."""

    def forward(self, logits, target):
        _, target, inter, p_sum, g_sum = _soft_sums(logits, target)
        bce = (torch.log(1 + torch.exp(logits)) - logits * target).mean()
        return bce + 1 - (2 * inter + self.smooth) / (p_sum + g_sum + self.smooth)


class DiceBCELogOfSigmoid(GoodDiceBCE):
    """BCE as -(t log sigmoid(x) + (1 - t) log sigmoid(-x)): log(0) once a sigmoid underflows."""

    def forward(self, logits, target):
        _, target, inter, p_sum, g_sum = _soft_sums(logits, target)
        logs = target * torch.log(torch.sigmoid(logits))
        logs = logs + (1 - target) * torch.log(torch.sigmoid(-logits))
        return -logs.mean() + 1 - (2 * inter + self.smooth) / (p_sum + g_sum + self.smooth)


@pytest.mark.parametrize("cls", [DiceBCELogOnePlusExp, DiceBCELogOfSigmoid])
def test_dice_bce_check_refuses_bce_that_overflows(cls):
    """Written-out BCEs that pass at logits of +-30 fail at +-120, where e^x overflows or a
    sigmoid underflows to 0: 'exact and stable', as notebook 05 asks."""
    with pytest.raises(CheckFailed, match=r"confidently wrong pixels \(logits \+-30, \+-120\)"):
        check_dice_bce_loss(cls)


def test_loss_check_asks_for_the_class_not_an_instance():
    """Passing an instance instead of the class gives a clear message."""
    with pytest.raises(CheckFailed, match="pass the class itself"):
        check_iou_loss(GoodIoU())


# --- learner-style mIoU functions, with a NumPy confusion matrix ---


def _confusion(pred, target, num_classes, ignore_index=255):
    t, p = target.numpy().ravel(), pred.numpy().ravel()
    keep = t != ignore_index
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (t[keep], p[keep]), 1)
    return cm


def _ious(cm):
    tp = np.diag(cm).astype(float)
    union = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return tp / union, union


def good_miou(pred, target, num_classes, ignore_index=255):
    iou, union = _ious(_confusion(pred, target, num_classes, ignore_index))
    return float(iou[union > 0].mean())


def miou_over_all_classes(pred, target, num_classes, ignore_index=255):
    iou, _ = _ious(_confusion(pred, target, num_classes, ignore_index))
    return float(np.nan_to_num(iou).mean())


def miou_counting_ignored(pred, target, num_classes, ignore_index=255):
    target = torch.where(target == ignore_index, 0, target)  # ignored pixels become background
    return good_miou(pred, target, num_classes, ignore_index)


def miou_skipping_unpredicted(pred, target, num_classes, ignore_index=255):
    cm = _confusion(pred, target, num_classes, ignore_index)
    iou, _ = _ious(cm)
    return float(iou[cm.sum(0) > 0].mean())


def miou_per_image(pred, target, num_classes, ignore_index=255):
    return float(
        np.mean(
            [good_miou(p, t, num_classes, ignore_index) for p, t in zip(pred, target, strict=True)]
        )
    )


def test_miou_check_takes_any_real_number(capsys):
    """A NumPy float32 is a number too (it failed as 'expected a number, got float32')."""
    check_miou(lambda *args, **kwargs: np.float32(good_miou(*args, **kwargs)))
    assert "✓ check_miou" in capsys.readouterr().out


def test_miou_check_passes_on_numpy_implementation(capsys):
    """An independent NumPy mIoU passes, and it gives 0.575 on the notebook's 4x4 example."""
    target = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 255], [0, 2, 2, 2]])
    pred = torch.tensor([[0, 0, 1, 0], [0, 1, 1, 1], [0, 2, 1, 2], [0, 0, 2, 2]])
    # by hand: background 5/8, cat 3/6, dog 3/5 -> mean 0.575
    assert good_miou(pred, target, 3) == pytest.approx((5 / 8 + 3 / 6 + 3 / 5) / 3)
    check_miou(good_miou)
    assert capsys.readouterr().out.startswith("✓ check_miou")


@pytest.mark.parametrize(
    ("fn", "case"),
    [
        (miou_over_all_classes, "absent from both"),
        (miou_counting_ignored, "ignored pixels"),
        (miou_skipping_unpredicted, "never predicted"),
        (miou_per_image, "a batch of 3"),
    ],
)
def test_miou_check_catches_wrong_implementations(fn, case):
    """Averaging over absent classes, counting ignored pixels, dropping unpredicted classes and
    averaging per-image scores each fail on the case that targets them."""
    with pytest.raises(CheckFailed, match=case):
        check_miou(fn)


def miou_from_the_packages_matrices(pred, target, num_classes, ignore_index=255):
    """The confusion matrix counted by deeplab_utils.metrics.per_image_confusion (notebook
    08's), summed over the images, the IoUs computed by hand: the counting is the exercise."""
    from deeplab_utils.metrics import per_image_confusion

    cm = per_image_confusion(pred, target, num_classes).sum(0).double()
    tp = cm.diagonal()
    union = cm.sum(0) + cm.sum(1) - tp
    return (tp / union)[union > 0].mean().item()


def miou_from_the_packages_ious(pred, target, num_classes, ignore_index=255):
    """The matrix counted by hand, the IoUs by the package's private helper."""
    from deeplab_utils.metrics import _iou

    cm = torch.from_numpy(_confusion(pred, target, num_classes, ignore_index)).double()
    return _iou(cm).nanmean().item()


@pytest.mark.parametrize("fn", [miou_from_the_packages_matrices, miou_from_the_packages_ious])
def test_miou_check_refuses_the_packages_confusion_matrix(fn):
    """'Write it yourself' refuses the package's confusion matrices and IoUs, not only
    mean_iou and SegmentationMetrics: each of these gives the right number."""
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 255], [0, 2, 2, 2]]])
    pred = torch.tensor([[[0, 0, 1, 0], [0, 1, 1, 1], [0, 2, 1, 2], [0, 0, 2, 2]]])
    assert fn(pred, target, 3) == pytest.approx(0.575)
    with pytest.raises(CheckFailed, match="the reference it is compared with"):
        check_miou(fn)


# --- multi-class Dice + cross-entropy, written out independently of deeplab_utils.losses ---


class GoodDiceCE(nn.Module):
    """CE over valid pixels + 1 - mean over all classes of the batch-summed soft Dice."""

    def __init__(self, smooth=1.0, ignore_index=255):
        super().__init__()
        self.smooth, self.ignore_index = smooth, ignore_index

    def parts(self, logits, target):
        valid = target != self.ignore_index
        clean = torch.where(valid, target, torch.zeros_like(target))
        ce = F.cross_entropy(logits, clean, reduction="none")[valid].mean()
        probs = logits.softmax(1) * valid[:, None]
        onehot = F.one_hot(clean, logits.shape[1]).permute(0, 3, 1, 2) * valid[:, None]
        return ce, probs, onehot.float()

    def dice(self, probs, onehot, dims=(0, 2, 3)):
        inter = (probs * onehot).sum(dims)
        return (2 * inter + self.smooth) / (probs.sum(dims) + onehot.sum(dims) + self.smooth)

    def forward(self, logits, target):
        ce, probs, onehot = self.parts(logits, target)
        return ce + 1 - self.dice(probs, onehot).mean()


class DiceCEPerImage(GoodDiceCE):
    """Sums the Dice per image and averages over images."""

    def forward(self, logits, target):
        ce, probs, onehot = self.parts(logits, target)
        return ce + 1 - self.dice(probs, onehot, dims=(2, 3)).mean()


class DiceCEPresentClassesOnly(GoodDiceCE):
    """Averages the Dice over the classes present in the target only."""

    def forward(self, logits, target):
        ce, probs, onehot = self.parts(logits, target)
        present = onehot.sum((0, 2, 3)) > 0
        return ce + 1 - self.dice(probs, onehot)[present].mean()


class DiceCESigmoid(GoodDiceCE):
    """Takes per-class sigmoids instead of the softmax over classes for the Dice."""

    def forward(self, logits, target):
        ce, probs, onehot = self.parts(logits, target)
        valid = (target != self.ignore_index)[:, None]
        return ce + 1 - self.dice(torch.sigmoid(logits) * valid, onehot).mean()


class DiceCELogSoftmaxByHand(GoodDiceCE):
    """Cross-entropy as -log(softmax(x)): -inf where the true class is 120 below another."""

    def forward(self, logits, target):
        _, probs, onehot = self.parts(logits, target)
        valid = target != self.ignore_index
        picked = (torch.log(logits.softmax(1)) * onehot).sum(1)
        return -picked[valid].mean() + 1 - self.dice(probs, onehot).mean()


class DiceCECountsIgnored(GoodDiceCE):
    """Treats ignored pixels as background in the Dice sums."""

    def forward(self, logits, target):
        ce, _, _ = self.parts(logits, target)
        clean = torch.where(target == self.ignore_index, torch.zeros_like(target), target)
        onehot = F.one_hot(clean, logits.shape[1]).permute(0, 3, 1, 2).float()
        return ce + 1 - self.dice(logits.softmax(1), onehot).mean()


class DiceCESmoothOne(GoodDiceCE):
    def dice(self, probs, onehot, dims=(0, 2, 3)):
        inter = (probs * onehot).sum(dims)
        return (2 * inter + 1) / (probs.sum(dims) + onehot.sum(dims) + 1)


def test_dice_ce_check_passes_on_a_correct_loss(capsys):
    """A correct multi-class Dice + CE passes with one ✓ line and comes back; it gives
    plain cross-entropy + 1 - 1 = CE on a perfect one-hot prediction of every class."""
    logits = torch.tensor([[[[9.0, -9.0]], [[-9.0, 9.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[0, 1]]])
    ce = F.cross_entropy(logits, target)
    assert GoodDiceCE(smooth=0.0)(logits, target) == pytest.approx(ce.item(), abs=1e-6)
    assert check_dice_ce_loss(GoodDiceCE) is GoodDiceCE
    assert capsys.readouterr().out.startswith("✓ check_dice_ce_loss: all 7 cases")


@pytest.mark.parametrize(
    ("cls", "case"),
    [
        (DiceCEPerImage, "random logits"),
        (DiceCEPresentClassesOnly, "class 3 absent from the batch"),
        (DiceCESigmoid, "random logits"),
        (DiceCELogSoftmaxByHand, "confidently wrong pixels.*e\\^-120 is 0 in float32"),
        (DiceCECountsIgnored, "ignored pixels"),
        (DiceCESmoothOne, "smooth=0.5"),
    ],
)
def test_dice_ce_check_catches_wrong_losses(cls, case):
    """Per-image Dice, a mean over present classes only, sigmoids instead of the softmax,
    log(softmax(x)), ignored pixels in the Dice and a hard-coded smoothing constant fail."""
    with pytest.raises(CheckFailed, match=case):
        check_dice_ce_loss(cls)
