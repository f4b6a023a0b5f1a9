"""Your pieces, kept: what passed its check is saved as a Python file, and later notebooks load it.

When a check passes, its piece (``MyASPP``, ``MyDecoder``, ...) is written to the work folder's
``my_pieces/`` as a self-contained module: its source, the source of every function and class of
yours it uses, the imports and constants it needs. So it survives a kernel restart (on Colab, a
new session, with the work folder on Drive); notebook 04 assembles the network from the pieces of
02 and 03, which notebook 07 trains. A piece not saved yet, or whose file no longer runs, is the
package's, with a ``✗`` line.
"""

from __future__ import annotations

import ast
import dis
import importlib
import importlib.util
import inspect
import linecache
import os
import sys
import types
from pathlib import Path
from typing import Any

import deeplab_utils

from ..files import atomic_write

GRADING_ENV = "NBGRADER_EXECUTION"  # set by nbgrader ("autograde", "validate") while it grades
_PREFIX = "_my_pieces_"  # the module name of a loaded piece: its file's stem after it
_FOLDER: list[Path] = []  # where setup_notebook() said the pieces live (none: nothing is saved)
_PIECES: dict[str, tuple[Any, str]] = {}  # piece -> (the package's version, the notebook)


class PieceNotSaved(ValueError):
    """The piece uses something that cannot be written as source (a tensor, a lambda, ...)."""


def keep_pieces_in(folder: str | Path | None) -> None:
    """Save passing pieces in ``folder`` from now on (``None``: save nothing)."""
    _FOLDER[:] = [] if folder is None else [Path(folder)]


def pieces_folder(workdir: str | Path) -> Path:
    """``workdir/my_pieces``; ``workdir/my_pieces/student`` for the exercises' copies in
    ``notebooks/student/``, so that running a solved notebook never replaces your work."""
    student = Path.cwd().name == "student"
    return Path(workdir) / "my_pieces" / ("student" if student else "")


def register(piece: str, reference: Any, notebook: str) -> None:
    """Name ``piece``, whose package version is ``reference``, taught in ``notebook``."""
    _PIECES[piece] = (reference, notebook)


def shown(path: Path) -> str:
    """``path`` from its ``my_pieces`` folder on (the same text on every machine), else whole."""
    parts = path.parts
    start = len(parts) - 1 - parts[::-1].index("my_pieces") if "my_pieces" in parts else 0
    return "/".join(parts[start:])


def public_name(obj: Any) -> str:
    """How a learner names ``obj``: ``deeplab_utils.ASPP``, or with its module where the package
    does not export it (``deeplab_utils.training.train_step``)."""
    top = getattr(deeplab_utils, obj.__qualname__, None) is obj
    return f"{'deeplab_utils' if top else obj.__module__}.{obj.__qualname__}"


def _file(piece: str, folder: str | Path | None = None) -> Path | None:
    """``folder/piece.py``, by default in the folder :func:`keep_pieces_in` set (none: None)."""
    folder = folder if folder is not None else (_FOLDER[0] if _FOLDER else None)
    return None if folder is None else Path(folder) / f"{piece}.py"


def save_piece(obj: Any, piece: str, folder: str | Path | None = None) -> Path | None:
    """Write ``obj`` (a class or function of yours) and what it uses to ``folder/piece.py``
    (default: the folder :func:`keep_pieces_in` set; none set: nothing is written)."""
    path = _file(piece, folder)
    if path is None:
        return None
    lines = _Closure().module(obj)
    try:  # a file that would not run must not replace one that does
        exec(compile(lines, f"<{piece}.py>", "exec"), {"__name__": f"{_PREFIX}{piece}_trial"})
    except Exception as exc:
        raise PieceNotSaved(f"the saved file would not run ({type(exc).__name__}: {exc})") from None
    with atomic_write(path, "w", encoding="utf-8") as file:
        file.write(f'"""{piece}: yours, saved when its check passed."""\n\n' + lines)
    return path


def keep_piece(impl: Any, piece: str) -> Any:
    """Save ``impl`` as ``piece`` for later notebooks, saying where (or why it could not be
    saved), and return it: what a passing check does, and what a notebook does for a piece it
    proves equal in its own cell."""
    if os.environ.get(GRADING_ENV):
        return impl  # graded notebooks are run one by one, each on its own: nothing carries over
    try:
        path = save_piece(impl, piece)
    except Exception as exc:  # a check that passed stays passed: the saving only says why
        _file(piece).unlink(missing_ok=True)  # an older version must not stand in for it
        print(f"  (not saved in your work folder: {exc})")
    else:
        if path is not None:
            print(f"  saved in your work folder: {shown(path)}")
    return impl


def load_piece(piece: str, folder: str | Path | None = None) -> Any:
    """Your saved ``piece`` (a ``✓`` line says so), or the package's version after a ``✗`` line
    when it is not saved yet or its file no longer runs."""
    reference, notebook = _PIECES[piece]
    path = _file(piece, folder)
    if os.environ.get(GRADING_ENV):  # a grader's machine holds other learners' pieces
        why = "not loaded while nbgrader grades (each notebook is graded on its own)"
    elif path is None or not path.is_file():
        colab = " (on Colab: setup_notebook(mount_drive=True) in each notebook)"
        colab = colab if "google.colab" in sys.modules else ""
        why = f"not saved yet (notebook {notebook} saves yours once it passes its check{colab})"
    else:
        try:
            mine = _import(path).PIECE
        except Exception as exc:  # a file edited by hand, or a package that changed under it
            why = f"{path} does not run ({type(exc).__name__}: {exc})"
        else:
            print(f"✓ {piece}: yours ({mine.__name__}, notebook {notebook}), from {shown(path)}")
            return mine
    print(f"✗ {piece}: {why} — the package's version is used ({public_name(reference)})")
    return reference


def _import(path: Path) -> types.ModuleType:
    """Run the file ``path`` as the module ``_my_pieces_<stem>`` (registered, so that its
    classes' source can be found and saved again inside a later piece)."""
    name = _PREFIX + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    linecache.checkcache(str(path))  # a file saved again since its last load
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _namespace(obj: Any) -> dict[str, Any]:
    """The globals ``obj``'s code reads: a function's own, a class's module's."""
    if inspect.isfunction(obj):
        return inspect.unwrap(obj).__globals__  # a decorated function's own, not the decorator's
    return vars(sys.modules[obj.__module__])


def functions(obj: Any) -> list[types.FunctionType]:
    """``obj`` itself, or a class's methods (decorators, static/class methods and properties
    unwrapped: the code of ``torch.no_grad``'s wrapper is everyone's)."""
    if inspect.isfunction(obj):
        return [inspect.unwrap(obj)]
    values = [getattr(v, "fget", v) for v in vars(obj).values()]  # a property: its getter
    values = [inspect.unwrap(getattr(v, "__func__", v)) for v in values]
    return [v for v in values if inspect.isfunction(v)]


def _definition(obj: Any) -> str:
    """The source of ``obj``'s ``def`` or ``class`` statement (decorators included), found
    through its code's file and line: a notebook cell's source is kept by IPython in
    ``linecache``, and a class's is not reachable from ``inspect`` there."""
    code = next((f.__code__ for f in functions(obj)), None)
    if code is None:
        raise PieceNotSaved(f"{obj.__name__} has no method whose source could be found")
    linecache.checkcache(code.co_filename)
    lines = linecache.getlines(code.co_filename)
    kind = ast.ClassDef if inspect.isclass(obj) else (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in ast.walk(ast.parse("".join(lines))):
        if not isinstance(node, kind) or node.name != obj.__name__:
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        if first <= code.co_firstlineno <= node.end_lineno:
            return "".join(lines[first - 1 : node.end_lineno])
    raise PieceNotSaved(f"the source of {obj.__name__} was not found")


def _names(source: str) -> list[str]:
    """The global names the statement ``source`` reads when it runs (decorators, bases, defaults,
    annotations, a class body) and when its functions run: the global loads of its bytecode, so
    a local named like a notebook's variable is not one (dunders are the class machinery's)."""
    found: list[str] = []
    codes = [compile(source, "<piece>", "exec")]
    while codes:
        code = codes.pop()
        for ins in dis.get_instructions(code):
            name = ins.argval
            loads = ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS")
            if loads and not name.startswith("__") and name not in found:
                found.append(name)
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return found


class _Closure:
    """A piece and everything it uses, as the lines of one module (definitions after what
    they use). One name means one thing: two different things of one name are refused."""

    def __init__(self) -> None:
        self.imports: dict[str, str] = {}
        self.constants: dict[str, str] = {}
        self.definitions: dict[str, tuple[Any, str]] = {}

    def module(self, obj: Any) -> str:
        self._define(obj)
        imports = sorted(self.imports.values(), key=lambda line: (line.startswith("from"), line))
        blocks = ["\n".join(imports), "\n".join(self.constants.values())]
        blocks += [_without_markers(source) for _, source in self.definitions.values()]
        return "\n\n\n".join(b for b in blocks if b) + f"\n\n\nPIECE = {obj.__name__}\n"

    def _define(self, obj: Any) -> None:
        name = obj.__name__
        if name == "<lambda>":
            raise PieceNotSaved("it uses a lambda: write it with def")
        if name in self.definitions:
            known, source = self.definitions[name]
            if known is not obj and (not source or source != _definition(obj)):
                raise _conflict(name)
            return
        if name in self.imports or name in self.constants:
            raise _conflict(name)
        self.definitions[name] = (obj, "")  # placeholder: a cycle of functions ends here
        source = _definition(obj)
        namespace = _namespace(obj)
        for used in _names(source):
            if used in namespace and used != name:
                self._use(used, namespace[used], obj.__module__)
        self.definitions.pop(name)
        self.definitions[name] = (obj, source)  # after its dependencies

    def _use(self, name: str, value: Any, home: str) -> None:
        module = getattr(value, "__module__", None)
        if inspect.isfunction(value) and value.__name__ == "<lambda>":
            raise PieceNotSaved(f"it uses {name}, a lambda: write it with def")
        if isinstance(value, types.ModuleType):
            alias = "" if value.__name__ == name else f" as {name}"
            self._bind(self.imports, name, f"import {value.__name__}{alias}")
        elif (inspect.isclass(value) or inspect.isfunction(value)) and (
            module in ("__main__", home) or (module or "").startswith(_PREFIX)
        ):
            self._define(value)  # yours: its source goes in too
            if value.__name__ != name:  # loaded under another name (MyASPP = load_piece(...))
                alias = f"{name} = {value.__name__}"
                if name in self.definitions and self.definitions[name][1] != alias:
                    raise _conflict(name)
                self.definitions[name] = (value, alias)
        elif _importable(value):
            alias = "" if value.__qualname__ == name else f" as {name}"
            self._bind(self.imports, name, f"from {module} import {value.__qualname__}{alias}")
        elif _literal(value):
            self._bind(self.constants, name, f"{name} = {value!r}")
        else:
            raise PieceNotSaved(
                f"it uses {name}, a {type(value).__name__} of the notebook's: only functions, "
                "classes, modules and constants (numbers, strings, lists, tuples, dicts, sets) "
                "can be saved with it"
            )

    def _bind(self, lines: dict[str, str], name: str, line: str) -> None:
        taken = self.imports.get(name) or self.constants.get(name) or name in self.definitions
        if taken and taken != line:
            raise _conflict(name)
        lines[name] = line


def _conflict(name: str) -> PieceNotSaved:
    return PieceNotSaved(
        f"two different things are named {name} (in this notebook and in a piece it loads): "
        "rename one and run its check again"
    )


def _without_markers(source: str) -> str:
    """``source`` without the solved notebooks' ``### BEGIN/END SOLUTION`` lines (nbgrader's)."""
    markers = ("### BEGIN SOLUTION", "### END SOLUTION")
    lines = [line for line in source.splitlines() if line.strip() not in markers]
    return "\n".join(lines).rstrip()


def _importable(value: Any) -> bool:
    """Whether ``from value.__module__ import value.__qualname__`` gives ``value`` back."""
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
    if not module or module == "__main__" or "." in qualname or "<" in qualname:
        return False
    try:
        return getattr(importlib.import_module(module), qualname, None) is value
    except ImportError:
        return False


def _literal(value: Any) -> bool:
    """Whether ``repr(value)`` is Python that gives ``value`` back (numbers, strings, tuples,
    lists, dicts, sets)."""
    try:
        return type(value) in (int, float, str, bool, tuple, list, dict, set, type(None)) and (
            ast.literal_eval(repr(value)) == value
        )
    except (ValueError, SyntaxError):
        return False
