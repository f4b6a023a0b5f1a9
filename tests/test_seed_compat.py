"""The seed this course grew from must keep working: its names and its plain Adam loop."""

import torch

import deeplab_utils
from deeplab_utils import IOU, Deeplabv3Plus, DiceBCELoss


def test_seed_names_are_aliases():
    """The seed's names are the package's classes, not copies."""
    assert deeplab_utils.Deeplabv3Plus is deeplab_utils.DeepLabV3Plus
    assert deeplab_utils.IOU is deeplab_utils.IoULoss


def test_seed_training_loop_runs_unchanged():
    """The seed's loop (one-class model, DiceBCELoss, IOU, Adam) runs and lowers the loss."""
    torch.manual_seed(0)
    model = Deeplabv3Plus(num_classes=1)
    criterion, iou = DiceBCELoss(), IOU()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randn(2, 3, 48, 48)
    masks = torch.zeros(2, 1, 48, 48)
    masks[:, :, 12:36, 12:36] = 1.0  # one square object per image
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, masks)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert outputs.shape == (2, 1, 48, 48)
    assert 0.0 <= iou(outputs, masks).item() <= 1.0
    assert losses[-1] < losses[0]
