"""Tests for deeplab_utils.losses: values against hand computations and torch references."""

import math

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils.losses import IOU, DiceBCELoss, DiceCELoss, IoULoss

BIG = 30.0  # a logit this large gives sigmoid/softmax probabilities within 1e-13 of 0 or 1


def square_mask(size: int, top: int, left: int, side: int) -> torch.Tensor:
    """A (size, size) float mask with a filled square."""
    mask = torch.zeros(size, size)
    mask[top : top + side, left : left + side] = 1
    return mask


def logits_from_mask(mask: torch.Tensor, scale: float = BIG) -> torch.Tensor:
    """Confident binary logits (1, 1, H, W) that predict `mask`."""
    return ((mask * 2 - 1) * scale).reshape(1, 1, *mask.shape)


def multiclass_logits(target: torch.Tensor, num_classes: int, scale: float = BIG) -> torch.Tensor:
    """Confident logits (B, C, H, W) whose argmax is `target` (B, H, W)."""
    return F.one_hot(target, num_classes).permute(0, 3, 1, 2).float() * scale


BINARY_LOSSES = [DiceBCELoss, IoULoss]


@pytest.mark.parametrize("loss_cls", BINARY_LOSSES)
@pytest.mark.parametrize("batch", [1, 3])
def test_binary_perfect_prediction_is_near_zero(loss_cls, batch):
    """Confident logits equal to the target give a loss of about 0."""
    target = (torch.rand(batch, 1, 16, 16) > 0.5).float()
    logits = (target * 2 - 1) * BIG
    assert loss_cls()(logits, target).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss_cls", BINARY_LOSSES)
def test_binary_all_wrong_is_large(loss_cls):
    """Confident logits opposite to the target give a large loss."""
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    logits = (1 - 2 * target) * BIG
    loss = loss_cls()(logits, target).item()
    assert loss > 0.99  # Dice/IoU part alone is ~1; BCE adds ~BIG for DiceBCELoss


@pytest.mark.parametrize("loss_cls", [DiceCELoss, IoULoss])
def test_multiclass_perfect_and_all_wrong(loss_cls):
    """Multi-class: perfect logits give ~0, logits pointing at a wrong class give a large loss."""
    target = torch.randint(0, 4, (2, 8, 8))
    assert loss_cls()(multiclass_logits(target, 4), target).item() == pytest.approx(0, abs=1e-6)
    wrong = multiclass_logits((target + 1) % 4, 4)
    assert loss_cls()(wrong, target).item() > 0.9


@pytest.mark.parametrize("loss_cls", [DiceBCELoss, IoULoss, DiceCELoss])
def test_loss_decreases_as_overlap_grows(loss_cls):
    """A predicted square sliding onto the target square lowers the loss at every step."""
    target = square_mask(24, 8, 8, 8)
    values = []
    for shift in range(8, -1, -1):  # from no overlap to full overlap
        pred = square_mask(24, 8, 8 + shift, 8)
        logits = logits_from_mask(pred, scale=3.0)
        if loss_cls is DiceCELoss:  # two classes: background logit 0, foreground logit x
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
            values.append(loss_cls()(logits, target.long()[None]).item())
        else:
            values.append(loss_cls()(logits, target[None, None]).item())
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), values


def test_soft_dice_and_iou_match_hand_computation():
    """Soft Dice and IoU on a 2x2 example equal the formulas worked out by hand."""
    p = torch.tensor([[0.9, 0.2], [0.6, 0.1]])
    g = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])  # (1, 1, 2, 2)
    logits = torch.logit(p.double()).reshape(1, 1, 2, 2)
    # Σ p·g = 0.9 + 0.6 + 0.1 = 1.6, Σ p = 1.8, Σ g = 3, s = 1
    dice = (2 * 1.6 + 1) / (1.8 + 3 + 1)
    iou = (1.6 + 1) / (1.8 + 3 - 1.6 + 1)
    bce = -(math.log(0.9) + math.log(0.8) + math.log(0.6) + math.log(0.1)) / 4
    assert IoULoss()(logits, g).item() == pytest.approx(1 - iou, abs=1e-6)
    assert DiceBCELoss()(logits, g).item() == pytest.approx(bce + 1 - dice, abs=1e-6)
    # smooth=0: the plain ratios
    assert IoULoss(0)(logits, g).item() == pytest.approx(1 - 1.6 / 3.2, abs=1e-6)


def test_multiclass_dice_matches_hand_computation():
    """DiceCELoss's Dice term (the loss less its dice_weight=0 value) equals 1 − mean of the
    per-class Dice computed by hand."""
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])  # 3 pixels
    target = torch.tensor([0, 1, 1])
    logits = probs.log().T.reshape(1, 3, 1, 3)  # softmax(log p) = p
    onehot = F.one_hot(target, 3).float()
    dices = [
        (2 * (probs[:, c] * onehot[:, c]).sum() + 1) / (probs[:, c].sum() + onehot[:, c].sum() + 1)
        for c in range(3)
    ]
    expected = 1 - sum(d.item() for d in dices) / 3
    target = target.reshape(1, 1, 3)
    loss = DiceCELoss()(logits, target) - DiceCELoss(dice_weight=0)(logits, target)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("class_weights", [None, [0.5, 2.0, 1.0]])
def test_dicece_ce_part_equals_cross_entropy(batch, class_weights):
    """With dice_weight=0, DiceCELoss equals F.cross_entropy(ignore_index=255), weighted or not."""
    logits = torch.randn(batch, 3, 6, 7)
    target = torch.randint(0, 3, (batch, 6, 7))
    target[:, :2] = 255
    weight = None if class_weights is None else torch.tensor(class_weights)
    expected = F.cross_entropy(logits, target, weight=weight, ignore_index=255)
    loss = DiceCELoss(dice_weight=0, class_weights=class_weights)(logits, target)
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("loss_cls", [DiceBCELoss, IoULoss, DiceCELoss])
def test_ignored_pixels_have_no_effect(loss_cls):
    """Ignored pixels get zero gradient, and changing their logits leaves the value unchanged."""
    channels = 3 if loss_cls is DiceCELoss else 1
    logits = torch.randn(2, channels, 8, 8, requires_grad=True)
    high = channels if channels > 1 else 2
    target = torch.randint(0, high, (2, 8, 8))
    ignored = torch.rand(2, 8, 8) < 0.3
    target[ignored] = 255
    loss = loss_cls()(logits, target)
    loss.backward()
    grad_ignored = logits.grad.permute(0, 2, 3, 1)[ignored]
    assert torch.equal(grad_ignored, torch.zeros_like(grad_ignored))
    assert logits.grad.abs().sum() > 0
    other = logits.detach().clone()
    other.permute(0, 2, 3, 1)[ignored] = 100.0
    torch.testing.assert_close(loss_cls()(other, target), loss.detach())


@pytest.mark.parametrize("loss_cls", [DiceBCELoss, IoULoss, DiceCELoss])
@pytest.mark.parametrize("case", ["empty", "all_ignored"])
def test_empty_and_all_ignored_are_finite(loss_cls, case):
    """An empty mask (all background) or an all-ignored batch gives finite value and gradient."""
    channels = 3 if loss_cls is DiceCELoss else 1
    logits = torch.randn(2, channels, 8, 8, requires_grad=True)
    fill = 0 if case == "empty" else 255
    target = torch.full((2, 8, 8), fill, dtype=torch.long)
    loss = loss_cls()(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    if case == "all_ignored":
        assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits.grad))


@pytest.mark.parametrize("mask_shape", [(2, 1, 8, 8), (2, 8, 8)])
def test_seed_usage_with_one_class_model(mask_shape):
    """The seed's `criterion(model(images), masks)` works with float masks (B,1,H,W) or (B,H,W)."""
    model = torch.nn.Conv2d(3, 1, 1)
    images = torch.randn(2, 3, 8, 8)
    masks = (torch.rand(mask_shape) > 0.5).float()
    for criterion in (DiceBCELoss(), IOU()):
        loss = criterion(model(images), masks)
        loss.backward()
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert model.weight.grad is not None


def test_dicebce_bce_part_matches_torch():
    """DiceBCELoss equals F.binary_cross_entropy on probabilities plus 1 − batch soft Dice."""
    logits = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    target = (torch.rand(2, 1, 5, 5) > 0.5).double()
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    expected = F.binary_cross_entropy(p, target) + 1 - dice
    torch.testing.assert_close(
        DiceBCELoss()(logits, target).double(), expected, rtol=1e-5, atol=1e-6
    )


def test_dicebce_is_stable_for_huge_logits():
    """Logits of ±1e4 (where sigmoid then log would give -inf) still give a finite gradient."""
    logits = torch.tensor([[[[1e4, -1e4]]]], requires_grad=True)
    target = torch.tensor([[[[0.0, 1.0]]]])
    loss = DiceBCELoss()(logits, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(1e4 + 1 - 1 / 3, rel=1e-5)


@pytest.mark.parametrize("loss_cls", [DiceBCELoss, IoULoss, DiceCELoss])
def test_bf16_autocast_close_to_fp32(loss_cls):
    """Under CPU bfloat16 autocast, a conv model's loss stays finite and close to fp32."""
    channels = 3 if loss_cls is DiceCELoss else 1
    model = torch.nn.Conv2d(4, channels, 3, padding=1)
    images = torch.randn(2, 4, 16, 16)
    target = torch.randint(0, max(channels, 2), (2, 16, 16))
    reference = loss_cls()(model(images), target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(images)
        loss = loss_cls()(logits, target)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert loss.item() == pytest.approx(reference.item(), rel=2e-2)


def test_bad_shapes_raise():
    """Mismatched logits/target shapes raise a ValueError naming both shapes."""
    with pytest.raises(ValueError, match=r"\(2, 7, 8\).*\(2, 1, 8, 8\)"):
        DiceBCELoss()(torch.randn(2, 1, 8, 8), torch.zeros(2, 7, 8))
    with pytest.raises(ValueError, match=r"\(2, 8, 9\).*\(2, 3, 8, 8\)"):
        DiceCELoss()(torch.randn(2, 3, 8, 8), torch.zeros(2, 8, 9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"1 channel.*\(2, 3, 8, 8\)"):
        DiceBCELoss()(torch.randn(2, 3, 8, 8), torch.zeros(2, 8, 8))
    with pytest.raises(ValueError, match="C >= 2.*got 1"):
        DiceCELoss()(torch.randn(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits must have shape \(B, C, H, W\), got \(2, 8, 8\)"):
        IoULoss()(torch.randn(2, 1, 8, 8)[:, 0], torch.zeros(2, 8, 8))  # a squeezed output
    with pytest.raises(ValueError, match=r"1 channel \(B, 1, H, W\), got \(2, 8, 8\)"):
        DiceBCELoss()(torch.randn(2, 1, 8, 8)[:, 0], torch.zeros(2, 8, 8))


def test_bad_target_values_raise():
    """Target values outside the allowed range raise a ValueError naming the bad value."""
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, 1, 1] = 7
    with pytest.raises(ValueError, match="got 7"):
        DiceCELoss()(torch.randn(1, 3, 4, 4), target)
    with pytest.raises(ValueError, match="got 7"):
        IoULoss()(torch.randn(1, 3, 4, 4), target)
    with pytest.raises(ValueError, match="got 7"):
        DiceBCELoss()(torch.randn(1, 1, 4, 4), target)
    target[0, 1, 1] = -1
    with pytest.raises(ValueError, match="got -1"):
        DiceCELoss()(torch.randn(1, 3, 4, 4), target)


@pytest.mark.parametrize("loss_cls", [DiceCELoss, IoULoss])
def test_float_or_channel_masks_for_multiclass_losses_raise(loss_cls):
    """A float mask, or a (B, 1, H, W) one, given to a multi-class loss is refused in one line
    naming the dtype or both shapes."""
    logits = torch.randn(1, 3, 4, 4)
    with pytest.raises(TypeError, match=r"integer tensor \(B, H, W\), got dtype torch.float32"):
        loss_cls()(logits, torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"\(1, 1, 4, 4\) does not match logits shape \(1, 3"):
        loss_cls()(logits, torch.zeros(1, 1, 4, 4, dtype=torch.long))


def test_loss_values_are_pinned():
    """Seeded logits and targets (with ignored pixels) give the values recorded from the
    implementation of issue 19, to float32 precision across hosts."""
    g = torch.Generator().manual_seed(0)
    binary_logits = torch.randn(2, 1, 6, 7, generator=g) * 3
    binary_target = (torch.rand(2, 1, 6, 7, generator=g) > 0.6).float()
    binary_target[0, 0, 0] = 255
    logits = torch.randn(2, 3, 6, 7, generator=g) * 2
    target = torch.randint(0, 3, (2, 6, 7), generator=g)
    target[:, 0, :3] = 255
    weighted = DiceCELoss(0.5, dice_weight=0.3, class_weights=[0.5, 2.0, 1.0])
    values = {
        "DiceBCELoss": (DiceBCELoss()(binary_logits, binary_target), 1.8407135009765625),
        "IoULoss binary": (IoULoss()(binary_logits, binary_target), 0.6775368452072144),
        "IoULoss 3 classes": (IoULoss()(logits, target), 0.8071931004524231),
        "DiceCELoss": (DiceCELoss()(logits, target), 2.705756664276123),
        "DiceCELoss weighted": (weighted(logits, target), 2.222637891769409),
    }
    for name, (value, pinned) in values.items():
        assert value.item() == pytest.approx(pinned, rel=1e-5), name
