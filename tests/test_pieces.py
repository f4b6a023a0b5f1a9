"""Tests for deeplab_utils.checks.pieces: a passing exercise is saved as a module that runs alone,
and a later notebook loads it (or the package's version, saying so)."""

import importlib.util
import sys
import textwrap

import pytest
import torch

from deeplab_utils import ASPP, Decoder
from deeplab_utils.checks import check_aspp, pieces

LEARNER = """
import math

import torch
import torch.nn.functional as F
from torch import nn

from deeplab_utils.decoder import LOW_LEVEL_CHANNELS

x = torch.randn(3)  # a notebook's tensor, named like the locals below
RATES = (6, 12, 18)


def conv_bn_relu(conv):
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


class MyASPPPooling(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        super().__init__(nn.AdaptiveAvgPool2d(1), conv, nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pool, conv, bn, relu = self
        y = conv(pool(x))
        y = relu(y) if self.training and y.shape[0] == 1 else relu(bn(y))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class MyASPP(nn.Module):
    def __init__(self, in_channels, out_channels=256, rates=RATES, dropout=0.5):
        super().__init__()
        one = conv_bn_relu(nn.Conv2d(in_channels, out_channels, 1, bias=False))
        atrous = [conv_bn_relu(nn.Conv2d(in_channels, out_channels, 3, padding=r, dilation=r,
                                         bias=False)) for r in rates]
        self.convs = nn.ModuleList([one, *atrous, MyASPPPooling(in_channels, out_channels)])
        self.project = nn.Sequential(
            *conv_bn_relu(nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False)),
            nn.Dropout(dropout))

    def forward(self, x):
        return self.project(torch.cat([conv(x) for conv in self.convs], dim=1))


@torch.no_grad()
def predict(model, images):
    return model(images).softmax(dim=1) * RATES[0]


def uses_a_tensor():
    return x * math.pi + LOW_LEVEL_CHANNELS
"""


@pytest.fixture
def learner(tmp_path):
    """The code above as a module of its own, as a notebook's namespace is."""
    path = tmp_path / "learner_notebook.py"
    path.write_text(LEARNER)
    spec = importlib.util.spec_from_file_location("learner_notebook", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["learner_notebook"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["learner_notebook"]


def test_a_saved_piece_runs_alone_and_computes_what_the_original_does(learner, tmp_path, capsys):
    """The file holds the piece, the functions and classes it uses (each once, before it), the
    imports and constants it reads, and nothing else: not the tensor x its locals are named
    after. Loaded in a fresh module, it computes what the original computes."""
    pieces.register("aspp", ASPP, "02")
    folder = tmp_path / "work" / "my_pieces"
    path = pieces.save_piece(learner.MyASPP, "aspp", folder)
    text = path.read_text()
    assert path == folder / "aspp.py" and text.count("class MyASPPPooling") == 1
    assert text.index("def conv_bn_relu") < text.index("class MyASPP(")
    assert "RATES = (6, 12, 18)" in text and "import torch.nn.functional as F" in text
    assert "torch.randn" not in text and "uses_a_tensor" not in text and "import math" not in text
    del sys.modules["learner_notebook"]  # the file must not need the module it came from
    sys.modules["learner_notebook"] = learner  # (the fixture's teardown)
    loaded = pieces.load_piece("aspp", folder)
    assert "✓ aspp: yours (MyASPP, notebook 02), from my_pieces/aspp.py" in capsys.readouterr().out
    assert loaded is not learner.MyASPP and loaded.__name__ == "MyASPP"
    original, again = learner.MyASPP(8, 4, rates=(1, 2)), loaded(8, 4, rates=(1, 2))
    again.load_state_dict(original.state_dict())
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(again.eval()(x), original.eval()(x), rtol=0, atol=0)


def test_a_decorated_function_is_saved_with_its_decorator(learner, tmp_path):
    """@torch.no_grad() wraps the function in torch's code: the piece is the learner's own."""
    text = pieces.save_piece(learner.predict, "tta", tmp_path).read_text()
    assert text.count("@torch.no_grad()\ndef predict(model, images):") == 1
    assert "RATES = (6, 12, 18)" in text and "import torch\n" in text
    pieces.register("tta", None, "08")
    loaded = pieces.load_piece("tta", tmp_path)
    assert loaded(lambda x: x, torch.zeros(1, 2)).tolist() == [[3.0, 3.0]]


def test_a_piece_that_reads_a_tensor_is_refused_with_the_reason(learner, tmp_path):
    with pytest.raises(pieces.PieceNotSaved, match="it uses x, a Tensor of the notebook's"):
        pieces.save_piece(learner.uses_a_tensor, "aspp", tmp_path)
    assert not (tmp_path / "aspp.py").exists()


def test_a_piece_built_on_a_loaded_piece_carries_its_source(learner, tmp_path, capsys):
    """Notebook 04's network uses pieces loaded from 02's files: saving it writes their source
    in, so 07 needs only the network's own file."""
    pieces.register("aspp", ASPP, "02")
    pieces.save_piece(learner.MyASPP, "aspp", tmp_path)
    aspp = pieces.load_piece("aspp", tmp_path)
    code = "from torch import nn\nclass Net(nn.Module):\n"
    code += (
        "    def __init__(self):\n        super().__init__()\n        self.aspp = MyASPP(8, 4)\n"
    )
    namespace = {"__name__": "learner_net", "MyASPP": aspp}
    module = type(sys)("learner_net")
    module.__dict__.update(namespace)
    path = tmp_path / "net_source.py"
    path.write_text(code)
    exec(compile(code, str(path), "exec"), module.__dict__)
    sys.modules["learner_net"] = module
    try:
        saved = pieces.save_piece(module.Net, "net", tmp_path / "later").read_text()
    finally:
        del sys.modules["learner_net"]
    assert "class MyASPP(" in saved and "class MyASPPPooling" in saved and "class Net(" in saved
    assert "_my_pieces_" not in saved


def test_a_missing_or_broken_piece_is_the_packages_with_a_cross_line(tmp_path, capsys):
    pieces.register("decoder", Decoder, "04")
    assert pieces.load_piece("decoder", tmp_path) is Decoder
    out = capsys.readouterr().out
    assert out.startswith("✗ decoder: not saved yet (notebook 04 saves yours once it passes")
    assert "(deeplab_utils.Decoder)" in out
    (tmp_path / "decoder.py").write_text("PIECE = undefined_name\n")
    assert pieces.load_piece("decoder", tmp_path) is Decoder
    assert (
        "does not run (NameError: name 'undefined_name' is not defined)" in capsys.readouterr().out
    )
    assert pieces.load_piece("decoder") is Decoder  # no folder set: nothing saved, nothing found


def test_a_passing_check_saves_the_piece_where_setup_said(learner, tmp_path, capsys):
    pieces.keep_pieces_in(tmp_path / "my_pieces")
    assert check_aspp(learner.MyASPP) is learner.MyASPP
    assert "saved in your work folder: my_pieces/aspp.py" in capsys.readouterr().out
    assert "class MyASPP(" in (tmp_path / "my_pieces" / "aspp.py").read_text()
    pieces.keep_pieces_in(None)
    (tmp_path / "my_pieces" / "aspp.py").unlink()
    check_aspp(learner.MyASPP)
    assert not (tmp_path / "my_pieces" / "aspp.py").exists()


def test_a_check_that_passes_stays_passed_when_its_piece_cannot_be_saved(tmp_path, capsys):
    """A piece reading a notebook tensor passes its check and says why it was not saved."""
    code = textwrap.dedent(LEARNER).replace("RATES = (6, 12, 18)", "RATES = torch.tensor([6])")
    code = code.replace("rates=RATES", "rates=(6, 12, 18), unused=RATES")
    path = tmp_path / "tensor_notebook.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("tensor_notebook", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["tensor_notebook"] = module
    try:
        spec.loader.exec_module(module)
        pieces.keep_pieces_in(tmp_path / "my_pieces")
        assert check_aspp(module.MyASPP) is module.MyASPP
    finally:
        del sys.modules["tensor_notebook"]
    out = capsys.readouterr().out
    assert "(not saved in your work folder: it uses RATES, a Tensor" in out
    assert not (tmp_path / "my_pieces" / "aspp.py").exists()


def test_the_exercises_copies_keep_their_pieces_apart(tmp_path, monkeypatch):
    (tmp_path / "notebooks" / "student").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "notebooks")
    assert pieces.pieces_folder(tmp_path) == tmp_path / "my_pieces"
    monkeypatch.chdir(tmp_path / "notebooks" / "student")
    assert pieces.pieces_folder(tmp_path) == tmp_path / "my_pieces" / "student"


def _module(name, code, tmp_path):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_one_name_for_two_things_is_refused_and_the_same_code_twice_is_not(tmp_path):
    """A constant or helper of one name that differs between a notebook and a piece it loads
    would be silently overwritten in the saved file: refused, with what to do. The same helper
    written twice (a re-run cell, a copy) is one helper."""
    pieces.register("net", None, "04")
    first = _module("nb02", "WIDTH = 256\ndef helper():\n    return WIDTH\n", tmp_path)
    same = "WIDTH = 256\ndef helper():\n    return WIDTH\n"
    other = _module("nb04", same + "def net():\n    return helper() + aspp()\n", tmp_path)
    clash = _module("nb04b", "WIDTH = 48\ndef net():\n    return WIDTH + aspp()\n", tmp_path)
    try:
        pieces.save_piece(first.helper, "aspp", tmp_path / "a")
        module = pieces._import(tmp_path / "a" / "aspp.py")  # the loaded piece, as 04 has it
        for notebook in (other, clash):
            notebook.aspp = module.PIECE
        text = pieces.save_piece(other.net, "net", tmp_path / "b").read_text()
        assert text.count("def helper") == 1 and text.count("WIDTH = 256") == 1
        with pytest.raises(pieces.PieceNotSaved, match="two different things are named WIDTH"):
            pieces.save_piece(clash.net, "net", tmp_path / "c")
    finally:
        for name in ("nb02", "nb04", "nb04b"):
            del sys.modules[name]


def test_a_lambda_is_refused_with_what_to_write_instead_and_an_alias_is_kept(tmp_path):
    module = _module("nb_lambda", "g = lambda x: x\ndef f(x):\n    return g(x)\n", tmp_path)
    alias = _module("nb_alias", "def f(x):\n    return x\nh = f\ndef k(x):\n    return h(x)\n",
                    tmp_path)  # fmt: skip
    try:
        with pytest.raises(pieces.PieceNotSaved, match="it uses g, a lambda: write it with def"):
            pieces.save_piece(module.f, "f", tmp_path)
        pieces.register("k", None, "04")
        assert "\nh = f\n" in pieces.save_piece(alias.k, "k", tmp_path).read_text()
        assert pieces.load_piece("k", tmp_path)(3) == 3  # another name for a function: kept
    finally:
        del sys.modules["nb_lambda"], sys.modules["nb_alias"]


def test_a_piece_that_no_longer_saves_is_forgotten(learner, tmp_path, capsys):
    """Its older file would otherwise stand in for it in later notebooks, with a ✓."""
    pieces.keep_pieces_in(tmp_path / "my_pieces")
    check_aspp(learner.MyASPP)
    assert (tmp_path / "my_pieces" / "aspp.py").exists()
    learner.conv_bn_relu = lambda conv: torch.nn.Sequential(conv, torch.nn.BatchNorm2d(
        conv.out_channels), torch.nn.ReLU())  # fmt: skip
    check_aspp(learner.MyASPP)
    assert (
        "(not saved in your work folder: it uses conv_bn_relu, a lambda" in capsys.readouterr().out
    )
    assert not (tmp_path / "my_pieces" / "aspp.py").exists()


def test_a_piece_whose_file_would_not_run_is_not_saved(tmp_path):
    """A method's decorator is collected with the class; one the notebook has deleted since is
    not, and the trial run of the file catches it, so no file that fails is written (and no ✓
    is shown for it later)."""
    code = "def deco(f):\n    return f\nclass A:\n    @deco\n    def m(self):\n        return 1\n"
    module = _module("nb_deco", code, tmp_path)
    try:
        assert "def deco(f)" in pieces.save_piece(module.A, "a", tmp_path / "kept").read_text()
        del module.deco
        with pytest.raises(pieces.PieceNotSaved, match="would not run .NameError"):
            pieces.save_piece(module.A, "a", tmp_path)
    finally:
        del sys.modules["nb_deco"]
    assert not (tmp_path / "a.py").exists()
