"""What every self-check shares (deeplab_utils.checks._common.exercise_check): an unwritten
exercise hands back the package's version after one line, code that is or uses the reference
is refused, hints come in two steps, and under nbgrader every failure raises."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import deeplab_utils
from deeplab_utils import checks
from deeplab_utils.backbone import block_settings
from deeplab_utils.checks import CheckFailed
from deeplab_utils.checks._common import GRADING_ENV
from deeplab_utils.data import random_scale_crop_flip
from deeplab_utils.evaluation import confusion_matrix
from deeplab_utils.inference import predict
from deeplab_utils.metrics import SegmentationMetrics, mean_iou
from deeplab_utils.training import poly_lr_lambda, train_step, train_steps
from tests.test_checks_atrous import good_receptive_fields

STUB = "Exercise: write this part, then run the check below."


@pytest.fixture(autouse=True)
def _not_graded(monkeypatch):
    """A learner's own run: nbgrader's variable is unset (tests that grade set it)."""
    monkeypatch.delenv(GRADING_ENV, raising=False)


class StubModule(nn.Module):
    """The student copy of a class exercise: constructing it (or its forward) is not written."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()
        raise NotImplementedError(STUB)

    def forward(self, *args):
        raise NotImplementedError(STUB)


def stub_function(*args, **kwargs):
    """The student copy of a function exercise."""
    raise NotImplementedError(STUB)


# (check, the student's stub, what the check hands back, how the one line names it)
RUN_ALL = [
    (checks.check_atrous_conv2d, stub_function, deeplab_utils.atrous_conv2d, "atrous_conv2d"),
    (
        checks.check_receptive_fields,
        stub_function,
        deeplab_utils.receptive_fields,
        "receptive_fields",
    ),
    (checks.check_aspp_pooling, StubModule, deeplab_utils.ASPPPooling, "ASPPPooling"),
    (checks.check_aspp, StubModule, deeplab_utils.ASPP, "ASPP"),
    (checks.check_bottleneck, StubModule, deeplab_utils.Bottleneck, "Bottleneck"),
    (checks.check_block_settings, stub_function, block_settings, "backbone.block_settings"),
    (checks.check_decoder, StubModule, deeplab_utils.Decoder, "Decoder"),
    (checks.check_deeplabv3plus_forward, StubModule, deeplab_utils.DeepLabV3Plus, "DeepLabV3Plus"),
    (checks.check_dice_bce_loss, StubModule, deeplab_utils.DiceBCELoss, "DiceBCELoss"),
    (checks.check_iou_loss, StubModule, deeplab_utils.IoULoss, "IoULoss"),
    (checks.check_dice_ce_loss, StubModule, deeplab_utils.DiceCELoss, "DiceCELoss"),
    (checks.check_miou, stub_function, mean_iou, "metrics.mean_iou"),
    (
        checks.check_random_scale_crop_flip,
        stub_function,
        random_scale_crop_flip,
        "data.transforms.random_scale_crop_flip",
    ),
    (checks.check_train_step, stub_function, train_step, "training.train_step"),
    (checks.check_poly_lr, stub_function, poly_lr_lambda, "training.poly_lr_lambda"),
    (checks.check_train_loop, stub_function, train_steps, "training.train_steps"),
    (
        checks.check_confusion_matrix,
        stub_function,
        confusion_matrix,
        "evaluation.confusion_matrix",
    ),
    (checks.check_tta, stub_function, predict, "inference.predict"),
]


@pytest.mark.parametrize(
    ("check", "stub", "reference", "name"), RUN_ALL, ids=lambda v: getattr(v, "__name__", "")
)
def test_unwritten_exercise_gets_the_package_version_and_one_line(
    check, stub, reference, name, capsys
) -> None:
    """With the student's stub the check raises nothing, prints exactly one line saying the
    rest of the notebook uses the package's version, and returns that version."""
    assert check(stub) is reference
    out = capsys.readouterr().out
    assert out == (
        f"✗ {check.__name__}: not implemented yet — the rest of this notebook uses "
        f"deeplab_utils' version (deeplab_utils.{name})\n"
    )


@pytest.mark.parametrize(
    ("check", "stub", "reference", "name"), RUN_ALL, ids=lambda v: getattr(v, "__name__", "")
)
def test_passing_the_reference_itself_is_explained(check, stub, reference, name) -> None:
    """Running a check again on what it handed back says to run the defining cell first."""
    with pytest.raises(CheckFailed, match=f"this is deeplab_utils.{name} itself"):
        check(reference)


def _delegating_train_step(model, images, masks, optimizer, loss_fn):
    """One step through the package's loop."""
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return train_steps(model, [(images, masks)], loss_fn, optimizer, scheduler, 1)[0]


class CallsASPPPooling(nn.Sequential):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(*deeplab_utils.ASPPPooling(c_in, c_out))

    def forward(self, x):
        return deeplab_utils.ASPPPooling.forward(self, x)


class WrapsASPP(nn.Module):
    def __init__(self, c_in, c_out, rates, dropout=0.5) -> None:
        super().__init__()
        self.inner = deeplab_utils.ASPP(c_in, c_out, rates, dropout=dropout)


class CallsIoULoss(nn.Module):
    def forward(self, logits, target):
        return deeplab_utils.IoULoss()(logits, target)


def _miou_by_metrics(pred, target, num_classes, ignore_index=255):
    metrics = SegmentationMetrics(num_classes, ignore_index=ignore_index)
    metrics.update(pred, target)
    return metrics.compute()["miou"]


# (check, code that is or uses the package's reference, the reference's name in the message)
DELEGATING = [
    (
        checks.check_atrous_conv2d,
        lambda x, w, b=None, dilation=1, padding=0: deeplab_utils.atrous_conv2d(
            x, w, b, dilation=dilation, padding=padding
        ),
        "calls deeplab_utils.atrous_conv2d",
    ),
    (
        checks.check_receptive_fields,
        lambda layers: [deeplab_utils.receptive_field(layers[: i + 1]) for i in range(len(layers))],
        "calls deeplab_utils.receptive_field",
    ),
    (checks.check_aspp_pooling, CallsASPPPooling, "calls deeplab_utils.ASPPPooling"),
    (checks.check_aspp, WrapsASPP, "calls deeplab_utils.ASPP"),
    (
        checks.check_aspp,
        type("Mine", (deeplab_utils.ASPP,), {}),
        "Mine subclasses deeplab_utils.ASPP",
    ),
    (
        checks.check_bottleneck,
        type("Mine", (deeplab_utils.Bottleneck,), {}),
        "Mine subclasses deeplab_utils.Bottleneck",
    ),
    (
        checks.check_block_settings,
        lambda output_stride, multi_grid=None: block_settings(output_stride, multi_grid),
        "calls deeplab_utils.backbone.block_settings",
    ),
    (
        checks.check_decoder,
        type("Mine", (deeplab_utils.Decoder,), {}),
        "Mine subclasses deeplab_utils.Decoder",
    ),
    (
        checks.check_deeplabv3plus_forward,
        lambda self, x: deeplab_utils.DeepLabV3Plus.forward(self, x),
        "calls deeplab_utils.DeepLabV3Plus",
    ),
    (
        checks.check_dice_bce_loss,
        type("Mine", (deeplab_utils.DiceBCELoss,), {}),
        "Mine subclasses deeplab_utils.DiceBCELoss",
    ),
    (checks.check_iou_loss, CallsIoULoss, "calls deeplab_utils.IoULoss"),
    (
        checks.check_dice_ce_loss,
        type("Mine", (deeplab_utils.DiceCELoss,), {}),
        "Mine subclasses deeplab_utils.DiceCELoss",
    ),
    (checks.check_miou, _miou_by_metrics, "calls deeplab_utils.SegmentationMetrics"),
    (
        checks.check_random_scale_crop_flip,
        lambda *args: random_scale_crop_flip(*args),
        "calls deeplab_utils.data.transforms.random_scale_crop_flip",
    ),
    (
        checks.check_train_step,
        _delegating_train_step,
        "calls deeplab_utils.training.train_steps",
    ),
    (
        checks.check_poly_lr,
        lambda step, total, power=0.9, warmup_steps=0: poly_lr_lambda(
            step, total_steps=total, power=power, warmup_steps=warmup_steps
        ),
        "calls deeplab_utils.training.poly_lr_lambda",
    ),
    (
        checks.check_train_loop,
        lambda *args: train_steps(*args),
        "calls deeplab_utils.training.train_steps",
    ),
    (
        checks.check_confusion_matrix,
        lambda model, loader, c: confusion_matrix(model, loader, c),
        "calls deeplab_utils.evaluation.confusion_matrix",
    ),
    (
        checks.check_tta,
        lambda model, images, scales=(1.0,), flip=False: predict(
            model, images, scales=scales, flip=flip
        ),
        "calls deeplab_utils.inference.predict",
    ),
]


@pytest.mark.parametrize(
    ("check", "impl", "match"), DELEGATING, ids=lambda v: getattr(v, "__name__", "")
)
def test_code_that_uses_the_reference_is_refused(check, impl, match) -> None:
    """Subclassing the package's version, or calling it (directly, through a method or inside
    another helper), fails with a message saying the exercise is to implement it."""
    with pytest.raises(CheckFailed, match=rf"{match}.*implement it yourself"):
        check(impl)


def test_calling_the_reference_outside_the_checked_code_is_allowed(capsys) -> None:
    """The guard watches only the learner's code while the check runs it: a correct version
    defined next to code that uses the package passes, and the package is usable after."""
    from tests.test_checks_atrous import shifted_slices

    deeplab_utils.atrous_conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3))
    assert checks.check_atrous_conv2d(shifted_slices) is shifted_slices
    out = deeplab_utils.atrous_conv2d(torch.randn(1, 1, 5, 5), torch.randn(1, 1, 3, 3))
    assert out.shape == (1, 1, 3, 3)


def _forgets_rate(layers):
    field, jump, fields = 1, 1, []
    for kernel, stride, _ in layers:
        field += (kernel - 1) * jump
        jump *= stride
        fields.append(field)
    return fields


def test_hint_is_short_first_and_more_on_the_second_failure() -> None:
    """The first failure of a case gives the short hint and says how to get more; the second
    failure of the same case says more about the idea, without the recurrence itself."""
    with pytest.raises(CheckFailed) as first:
        checks.check_receptive_fields(_forgets_rate)
    assert "Hint: two numbers describe where a layer stands" in str(first.value)
    assert "More:" not in str(first.value) and "hint=True" in str(first.value)
    with pytest.raises(CheckFailed) as second:
        checks.check_receptive_fields(_forgets_rate)
    assert "More: a layer's kernel covers dilation*(kernel - 1) + 1" in str(second.value)
    assert "R_l =" not in str(second.value)


def test_hint_true_gives_the_second_hint_at_once() -> None:
    """check_x(impl, hint=True) shows the second hint on the very first failure."""
    with pytest.raises(CheckFailed, match=r"More: a layer's kernel covers"):
        checks.check_receptive_fields(_forgets_rate, hint=True)


def test_a_decorated_learner_function_is_not_mistaken_for_the_reference(capsys) -> None:
    """The package's predict is wrapped by @torch.no_grad(); a learner's function wrapped by the
    same decorator shares the wrapper's code, and must still pass (the guard unwraps)."""

    from tests.test_checks_evaluation import _tta

    tta = torch.no_grad()(_tta())
    assert checks.check_tta(tta) is tta
    assert capsys.readouterr().out.startswith("✓ check_tta")


def _graded_cell(monkeypatch, impl):
    """Run the cell `my_fields = check_receptive_fields(my_fields)` as nbgrader's autograde
    does; return the cell's namespace afterwards and the check's error (None if it passed)."""
    monkeypatch.setenv(GRADING_ENV, "autograde")
    namespace = {"check_receptive_fields": checks.check_receptive_fields, "my_fields": impl}
    namespace["alias"] = impl  # a second name for the learner's function
    try:
        exec("my_fields = check_receptive_fields(my_fields)", namespace)
    except CheckFailed as exc:
        return namespace, exc
    return namespace, None


@pytest.mark.parametrize(
    ("impl", "line"),
    [
        (stub_function, "✗ check_receptive_fields: not implemented yet — "),
        (_forgets_rate, "✗ check_receptive_fields: case "),
    ],
    ids=["unwritten", "wrong"],
)
def test_graded_failure_raises_and_hands_on_the_package_version(monkeypatch, capsys, impl, line):
    """Under nbgrader an unwritten or wrong exercise raises (its test cell scores 0) with the
    ✗ line, naming what the rest of the notebook uses, and the cell's names for the learner's
    code now mean the package's version, so later cells and exercises run on it."""
    namespace, error = _graded_cell(monkeypatch, impl)
    assert error is not None and str(error).startswith(line)
    assert str(error).endswith(f"— {checks.FALLBACK} (deeplab_utils.receptive_fields)")
    assert namespace["my_fields"] is deeplab_utils.receptive_fields
    assert namespace["alias"] is deeplab_utils.receptive_fields
    assert capsys.readouterr().out == ""


def test_graded_pass_keeps_the_learners_code(monkeypatch, capsys):
    """Under nbgrader a right answer passes as in a learner's run: ✓, and the code is kept."""
    namespace, error = _graded_cell(monkeypatch, good_receptive_fields)
    assert error is None and namespace["my_fields"] is good_receptive_fields
    assert capsys.readouterr().out.startswith("✓ check_receptive_fields")


def test_learners_run_is_not_graded(capsys):
    """Without nbgrader's variable an unwritten exercise prints its ✗ line and raises nothing,
    and a wrong one raises the case without the fallback note."""
    assert checks.check_receptive_fields(stub_function) is deeplab_utils.receptive_fields
    assert capsys.readouterr().out.startswith("✗ check_receptive_fields: not implemented yet")
    with pytest.raises(CheckFailed) as wrong:
        checks.check_receptive_fields(_forgets_rate)
    assert str(wrong.value).startswith("check_receptive_fields: case ")
    assert checks.FALLBACK not in str(wrong.value)


# Solution code inside a hint: a statement, an assignment (`x = ...`, `M += ...`) or a
# comprehension; or an expression that spells the code out: a call with arguments of a method
# (`x.view(1, -1)`, `.flip(-1)`), of torch's (`F.pad(x, ...)`, `torch.rand((), ...)`) or of a
# builtin (`len(self.convs)`), a power (`a ** p`) or a slice (`w[:, :, m, n]`, `x[..., ::2]`).
# A call without arguments names an API (`loss.item()`, `torch.no_grad()`), one with `...` a
# signature (`F.conv2d(..., dilation=r)`), and `name=value` a convention (`align_corners=False`).
_CODE = re.compile(
    r"\b\w+(\[[^\]]*\])? [-+*/]?= (?!=)|\[[^\]]* for \w+ in "
    r"|(\.|\b(len|range|sum|zip|enumerate|min|max|int|float|round)\b)\w*\((?!\)|\.\.\.)"
    r"|\*\*|\[[^\]]*:[^\]]*\]"
)


def _literals(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module, without docstrings and f-string pieces."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))
        if isinstance(node, ast.JoinedStr):
            skip.update(id(value) for value in node.values)
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


@pytest.mark.parametrize("module", sorted(Path(checks.__file__).parent.glob("*.py")), ids=str)
def test_no_hint_prints_solution_code(module: Path) -> None:
    """Hints, the second step included, point at the idea and never print solution code (the
    solved notebooks hold the solutions): no message of a check is a Python statement."""
    code = [f"line {line}: {text}" for line, text in _literals(module) if _CODE.search(text)]
    assert not code, "\n".join(code)


def test_a_failure_shows_its_message_alone_in_short_lines():
    """IPython, nbgrader's feedback and `nbgrader validate` (which cuts lines at 90 characters)
    show a failed check as its message, every word kept, in lines of at most 86 characters, a
    quoted case name never split; not as a traceback into the checks."""
    message = (
        "✗ check_aspp_pooling: case 'eval mode, batch 2, 9x9': values differ from the "
        "reference's (max |difference| 0.52 at (0, 3, 4, 4)). Hint: remember the size (H, W) "
        "first; then pool to 1x1, conv, BN, ReLU, and upsample back to exactly (H, W)."
    )
    lines = CheckFailed(message)._render_traceback_()
    assert all(len(line) <= 86 for line in lines) and len(lines) > 2
    assert " ".join(lines) == f"CheckFailed: {message}"
    assert any("'eval mode, batch 2, 9x9'" in line for line in lines)


def test_a_check_draws_its_cases_under_its_own_seed():
    """A check's cases do not depend on the notebook's random state (the same wrong code fails
    with the same numbers after any global seed), and the caller's state is left as it was."""
    from tests.test_checks_aspp import MaxPooling  # its weights are drawn by the check

    messages = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        following = torch.rand(3)
        torch.manual_seed(seed)
        with pytest.raises(CheckFailed) as failure:
            checks.check_aspp_pooling(MaxPooling)
        assert torch.equal(torch.rand(3), following)
        messages.append(str(failure.value).partition(" Hint:")[0])
    assert messages[0] == messages[1] and "max abs difference" in messages[0]
