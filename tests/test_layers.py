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
