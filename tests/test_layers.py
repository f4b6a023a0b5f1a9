"""The package's imports: every import of one deeplab_utils module by another is at module level,
where an import circle fails at once instead of hiding inside a function."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "deeplab_utils"


class _FunctionImports(ast.NodeVisitor):
    """Collects ``(line, innermost function, module)`` for package imports inside functions."""

    def __init__(self) -> None:
        self.functions: list[str] = []
        self.found: list[tuple[int, str, str]] = []

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node.name)
        self.generic_visit(node)
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def _record(self, node: ast.stmt, modules: list[str]) -> None:
        for module in modules:
            ours = module.startswith(".") or module.split(".")[0] == "deeplab_utils"
            if self.functions and ours:
                self.found.append((node.lineno, self.functions[-1], module))

    def visit_Import(self, node: ast.Import) -> None:
        self._record(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self._record(node, ["." * node.level + (node.module or "")])


def _imports_in_functions(source: str) -> list[tuple[int, str, str]]:
    visitor = _FunctionImports()
    visitor.visit(ast.parse(source))
    return visitor.found


def test_no_function_level_imports_of_the_package():
    """No module of deeplab_utils imports another of its modules inside a function."""
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 20  # the walk did find the package
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {function}() imports {module}"
        for path in modules
        for line, function, module in _imports_in_functions(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_walk_flags_relative_and_absolute_imports():
    """The check sees ``from . import x``, ``from deeplab_utils.x import y`` and ``import
    deeplab_utils.x`` inside (nested) functions and methods, not module-level or other imports."""
    source = (
        "import os\nfrom .aspp import ASPP\n\n"
        "def f():\n    from . import aspp\n    import torch\n"
        "    def g():\n        from deeplab_utils.aspp import ASPP\n"
        "class C:\n    def m(self):\n        import deeplab_utils.model\n"
        "        from torch import nn\n"
    )
    assert _imports_in_functions(source) == [
        (5, "f", "."),
        (8, "g", "deeplab_utils.aspp"),
        (11, "m", "deeplab_utils.model"),
    ]


def _long_functions(source: str, limit: int) -> list[tuple[str, int]]:
    """``(name, lines)`` of every function or method longer than ``limit`` lines (``def`` to its
    last line, docstring included)."""
    return [
        (node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > limit
    ]


def test_every_function_fits_a_screen():
    """No function of the package is longer than 60 lines (the training loop included)."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}: {name} has {lines} lines"
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in _long_functions(path.read_text(encoding="utf-8"), 60)
    ]
    assert found == []
    assert _long_functions("def f():\n" + "    x = 1\n" * 60, 60) == [("f", 61)]  # it counts


def test_the_main_job_reaches_the_optimizer_step_in_three_calls(tmp_path, monkeypatch):
    """From the main job's ``main`` to ``optimizer.step()`` there are 3 calls: main -> fit ->
    the (fp16) GradScaler's step -> the optimiser's; nothing of the package in between."""
    import traceback

    import torch

    from deeplab_utils import train

    stacks = []
    adam_step = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        stacks.append(traceback.extract_stack())
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    argv = ["--steps", "1", "--image-size", "32", "--batch-size", "2", "--train-samples", "2"]
    assert train.main([*argv, "--val-samples", "1", "--no-progress", "--out", str(tmp_path)]) == 0
    frames = [f for f in stacks[0] if "deeplab_utils" in f.filename]
    first = next(i for i, f in enumerate(frames) if f.name == "main")
    assert [f.name for f in frames[first:]] == ["main", "fit"]
    package_calls = frames[first:]
    assert package_calls[-1].line.startswith("scaler.step(optimizer)")
