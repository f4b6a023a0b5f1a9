"""Self-checks for notebook 08 (evaluation and inference): the evaluation loop and test-time
augmentation (multi-scale inputs and flips; the older flip-only check is kept for old copies)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ._common import Hint, _compare, _fail, _passed, _run, exercise_check


def _flip_tta_model(kind: str, num_classes: int, seed: int) -> torch.nn.Module:
    """Small position-dependent segmenters (eval mode) whose logits are large enough that
    averaging logits and averaging probabilities give clearly different answers."""
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "conv":
            model = nn.Conv2d(3, num_classes, 3, padding=1)
        else:  # a dilated conv stack: asymmetric weights, wider context
            model = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=2, dilation=2),
                nn.ReLU(),
                nn.Conv2d(8, num_classes, (1, 3), padding=(0, 1)),
            )
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)  # confident logits
    return model.eval()


# Older copies of notebook 08 call this check; the current one writes the full TTA (check_tta).
@exercise_check("inference:predict")
def check_flip_tta(fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]) -> None:
    """Check ``fn(model, images) -> probs``: left-right flip test-time augmentation.

    The reference is :func:`deeplab_utils.inference.predict` with ``flip=True``: the mean of
    ``softmax(model(x))`` and ``softmax(flip(model(flip(x))))``, flips along the width. Cases:
    batch 1 and 2, odd sizes, 3 and 5 classes, two small models. Recognised mistakes: the
    flipped run's output not flipped back, logits averaged instead of probabilities (the
    paper averages probabilities), a vertical flip, no flip at all. Taught in notebook 08.
    """
    from ..inference import predict

    check = "check_flip_tta"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, model kind, batch, classes, height, width)
        ("3x3 conv, batch 2, 9x13", "conv", 2, 3, 9, 13),
        ("batch 1, 16x16", "conv", 1, 5, 16, 16),
        ("dilated conv stack, batch 2, odd size 11x7", "stack", 2, 4, 11, 7),
    ]

    def run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x)

    for i, (name, kind, b, c, h, w) in enumerate(cases):
        model = _flip_tta_model(kind, c, seed=i)
        x = torch.randn(b, 3, h, w, generator=gen)
        expected = predict(model, x, flip=True)
        got = _run(check, name, fn, model, x.clone())
        plain = run(model, x)
        mistakes = {
            "the flipped run's output must be flipped back (flip(-1)) before averaging, "
            "or its pixels land on the mirror-image positions.": (
                plain.softmax(1) + run(model, x.flip(-1)).softmax(1)
            )
            / 2,
            "average the probabilities (softmax each run, then the mean), as the paper does, "
            "not the logits.": ((plain + run(model, x.flip(-1)).flip(-1)) / 2).softmax(1),
            "flip left-right, i.e. along the width (the last dimension, -1), not upside down.": (
                plain.softmax(1) + run(model, x.flip(-2)).flip(-2).softmax(1)
            )
            / 2,
            "return probabilities (softmax over the class dimension 1), not logits.": (
                plain + run(model, x.flip(-1)).flip(-1)
            )
            / 2,
            "also run the model on the flipped images: the result is the mean of two runs.": (
                plain.softmax(1)
            ),
        }
        hint = "average softmax(model(x)) and softmax(model(x.flip(-1)).flip(-1))."
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            for mistake, wrong in mistakes.items():
                if torch.allclose(got.detach().double(), wrong.double(), atol=1e-5, rtol=1e-4):
                    hint = mistake
                    break
        _compare(check, name, got, expected, hint=hint, atol=1e-5, rtol=1e-4)
    _passed(check, len(cases), "your flip TTA equals deeplab_utils.inference.predict(flip=True).")


class _Probe(torch.nn.Module):
    """A small segmenter that records, at every forward, its mode and whether autograd is on."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 6, 3, padding=1),
                torch.nn.BatchNorm2d(6),
                torch.nn.ReLU(),
                torch.nn.Dropout2d(0.5),
                torch.nn.Conv2d(6, num_classes, 1),
            )
            with torch.no_grad():  # running statistics unlike a batch's, so eval mode shows
                self.body[1].running_mean.uniform_(-1, 1)
                self.body[1].running_var.uniform_(0.5, 2)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, torch.is_grad_enabled()))
        return self.body(x)


@exercise_check("training:confusion_matrix", also_watch=("training:evaluate",))
def check_confusion_matrix(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(model, loader, num_classes) -> (C, C)`` counts: the evaluation loop.

    The reference is :func:`deeplab_utils.training.confusion_matrix`: the model in eval mode,
    no gradients, each batch's argmax over the classes, and ``M[target, prediction]`` counted
    over every pixel whose target is not 255. The check's model (BatchNorm, dropout) is handed
    over in train mode and records how it was called. Cases: 2 batches with ignored pixels, a
    batch of one, a class the model never predicts. Recognised mistakes: no ``model.eval()``,
    no ``torch.no_grad()``, rows and columns swapped, ignored pixels counted, the argmax over
    the wrong dimension. Taught in notebook 08.
    """
    from ..training import confusion_matrix

    check = "check_confusion_matrix"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, classes, batch sizes, ignore a border)
        ("2 batches of 2, 3 classes, ignored pixels", 3, (2, 2), True),
        ("a batch of one, 4 classes", 4, (1,), False),
        ("3 batches, 5 classes, ignored pixels", 5, (1, 3, 2), True),
    ]
    full = (
        "model.eval(); with torch.no_grad(): for each (images, masks): pred = model(images)"
        ".argmax(dim=1); keep = masks != 255; M += torch.bincount(masks[keep] * C + "
        "pred[keep], minlength=C * C).reshape(C, C)."
    )
    for name, c, sizes, ignore in cases:
        loader = []
        for b in sizes:
            masks = torch.randint(0, c, (b, 6, 7), generator=gen)
            if ignore:
                masks[:, 0] = 255
            loader.append((torch.randn(b, 3, 6, 7, generator=gen), masks))
        expected = confusion_matrix(_Probe(c).train(), loader, c)
        probe = _Probe(c).train()
        got = _run(check, name, fn, probe, loader, c)
        if any(training for training, _ in probe.seen):
            raise _fail(check, name, "the model ran in training mode", Hint(
                "evaluate in eval mode (model.eval()): BatchNorm then uses its running "
                "statistics and dropout keeps every unit.", full))  # fmt: skip
        if any(grad for _, grad in probe.seen):
            raise _fail(check, name, "the model ran with autograd on", Hint(
                "wrap the loop in torch.no_grad(): evaluation needs no gradients, and "
                "recording them costs memory for every batch.", full))  # fmt: skip
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            if torch.equal(got.T, expected) and not torch.equal(got, expected):
                hint: str | Hint = "rows are the target class, columns the prediction: M[t, p]."
            elif int(got.sum()) > int(expected.sum()):
                hint = "leave out the pixels whose target is 255 (ignore), before counting."
            else:
                hint = Hint("the prediction is the argmax over the classes, dimension 1.", full)
        else:
            hint = Hint(f"return a ({c}, {c}) tensor of counts.", full)
        _compare(check, name, got, expected, hint=hint, atol=0, rtol=0)
    _passed(check, len(cases), "your loop counts exactly as deeplab_utils.training.evaluate.")


def _tta_mistakes(model: torch.nn.Module, x: torch.Tensor, scales: tuple, flip: bool) -> dict:
    """What plausible wrong TTAs return, each under the hint that names its mistake."""
    import torch.nn.functional as F

    def runs(resize: dict, unflip: bool) -> list[torch.Tensor]:
        size, out = x.shape[-2:], []
        for s in scales:
            scaled = (max(1, round(s * size[0])), max(1, round(s * size[1])))
            xs = x if scaled == tuple(size) else F.interpolate(x, size=scaled, **resize)
            for mirrored in (False, True) if flip else (False,):
                logits = model(xs.flip(-1) if mirrored else xs)
                if mirrored and unflip:
                    logits = logits.flip(-1)
                out.append(F.interpolate(logits, size=size, **resize))
        return out

    bilinear = {"mode": "bilinear", "align_corners": False}
    with torch.no_grad():
        good = runs(bilinear, True)
        return {
            "average the probabilities (softmax each run, then the mean), as the paper does, "
            "not the logits.": torch.stack(good).mean(0).softmax(1),
            "mirror the flipped run's output back (flip(-1)) before averaging.": torch.stack(
                [r.softmax(1) for r in runs(bilinear, False)]
            ).mean(0),
            "resize with bilinear interpolation and align_corners=False, as the model's own "
            "upsampling does.": torch.stack(
                [r.softmax(1) for r in runs({"mode": "bilinear", "align_corners": True}, True)]
            ).mean(0),
        }


@exercise_check("inference:predict")
def check_tta(fn: Callable[..., torch.Tensor]) -> None:
    """Check ``fn(model, images, scales=(1.0,), flip=False) -> probabilities`` (test-time aug.).

    The reference is :func:`deeplab_utils.inference.predict`: for every scale, the images
    resized (bilinear, ``align_corners=False``), the model run (and on the left-right mirror,
    whose output is mirrored back, with ``flip``), the logits resized back to ``H x W``, and the
    softmax probabilities of all runs averaged (DeepLabv3 Sec. 4.3; DeepLabv3+ Table 3's "MS"
    and "Flip"). Cases: flip only, three scales, two scales with flips on an odd size.
    Recognised mistakes: logits averaged, the flip not undone, ``align_corners=True``, the
    result at the scaled size. Taught in notebook 08.
    """
    from ..inference import predict

    check = "check_tta"
    gen = torch.Generator().manual_seed(0)
    cases = [
        # (name, model kind, batch, classes, height, width, scales, flip)
        ("flip only, 3x3 conv, 9x13", "conv", 2, 3, 9, 13, (1.0,), True),
        ("scales 0.5, 1, 1.5, 16x16", "conv", 1, 4, 16, 16, (0.5, 1.0, 1.5), False),
        ("scales 0.75, 1.25 and flips, 11x7", "stack", 2, 5, 11, 7, (0.75, 1.25), True),
    ]
    full = (
        "for each scale s: xs = F.interpolate(images, size=(round(s*H), round(s*W)), "
        "mode='bilinear', align_corners=False); for each of xs (and xs.flip(-1), whose logits "
        "you flip(-1) back): resize the logits to (H, W) the same way, softmax(dim=1); return "
        "the mean of all these probability maps."
    )
    for i, (name, kind, b, c, h, w, scales, flip) in enumerate(cases):
        model = _flip_tta_model(kind, c, seed=i)
        x = torch.randn(b, 3, h, w, generator=gen)
        expected = predict(model, x, scales=scales, flip=flip)
        got = _run(check, name, fn, model, x.clone(), scales=scales, flip=flip)
        hint: str | Hint = Hint("resize, run, resize back, softmax, average.", full)
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:
            for mistake, wrong in _tta_mistakes(model, x, scales, flip).items():
                close = torch.allclose(got.detach().double(), wrong.double(), atol=1e-5)
                if close and not torch.allclose(wrong.double(), expected.double(), atol=1e-5):
                    hint = mistake
                    break
        elif isinstance(got, torch.Tensor) and got.shape[:2] == expected.shape[:2]:
            hint = "resize every run's logits back to the images' own H x W before averaging."
        _compare(check, name, got, expected, hint=hint, atol=1e-5, rtol=1e-4)
    _passed(check, len(cases), "your TTA equals deeplab_utils.inference.predict.")
