"""Tests for deeplab_utils.ablations: the paper's ablations in miniature (notebook 08)."""

import ast
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from deeplab_utils import ASPPPooling, SeparableConv2d, ablations, count_macs
from deeplab_utils.course import course_config
from deeplab_utils.metrics import trimap_miou
from deeplab_utils.training import fit

ROOT = Path(__file__).resolve().parents[1]


def tiny(workdir, **changes):
    config = course_config(workdir)
    return dataclasses.replace(config, image_size=64, batch_size=2, steps=2, train_samples=4,
                               val_samples=3, **changes)  # fmt: skip


def test_unknown_change_is_refused(tmp_path):
    with pytest.raises(ValueError, match="change must be one of"):
        ablations.ablated(tiny(tmp_path), "no backbone")


def test_each_change_alters_only_its_part(tmp_path):
    """Every network starts from the full model's weights, except in the part changed (regular
    convolutions draw other numbers from the seed's generator: they share the backbone only)."""
    full = ablations.ablated(tiny(tmp_path), "DeepLabV3+").model.state_dict()
    for change in ablations.ABLATIONS:
        model = ablations.ablated(tiny(tmp_path), change).model
        changed = {"DeepLabV3+": ("none",), "no decoder": ("decoder",),
                   "no image pooling": ("aspp.project.0",), "output stride 8": ("none",),
                   "regular convolutions": ("aspp", "decoder")}[change]  # fmt: skip
        for k, value in model.state_dict().items():
            if not k.startswith(changed):
                assert torch.equal(value, full[k]), (change, k)
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 5, 64, 64)


def test_no_decoder_is_aspp_then_1x1_then_bilinear_x16(tmp_path):
    model = ablations.ablated(tiny(tmp_path), "no decoder").model.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        aspp = model.aspp(model.backbone(x)["out"])  # (1, 256, 4, 4): OS 16
        want = F.interpolate(model.decoder.classify(aspp), size=(64, 64), mode="bilinear")
        assert aspp.shape[-1] == 4
        torch.testing.assert_close(model(x), want)


def test_no_image_pooling_has_four_branches_and_saves_their_macs(tmp_path):
    """Hand-counted, 64-pixel image (4 x 4 features at OS 16): the pooling branch's 1x1 conv
    2048 -> 256 on one position, and the projection's fifth 256-channel input at 16 positions."""
    full = ablations.ablated(tiny(tmp_path), "DeepLabV3+").model.eval()
    model = ablations.ablated(tiny(tmp_path), "no image pooling").model.eval()
    assert len(model.aspp.convs) == 4
    assert not any(isinstance(m, ASPPPooling) for m in model.modules())
    assert model.aspp.project[0].in_channels == 4 * 256
    x = torch.randn(1, 3, 64, 64)
    assert count_macs(full, x) - count_macs(model, x) == 2048 * 256 + 256 * 256 * 16


def test_output_stride_8_and_regular_convolutions(tmp_path):
    os8 = ablations.ablated(tiny(tmp_path), "output stride 8").model
    assert os8.config.output_stride == 8
    assert os8.backbone(torch.randn(1, 3, 64, 64))["out"].shape[-1] == 8
    regular = ablations.ablated(tiny(tmp_path), "regular convolutions").model
    assert not any(isinstance(m, SeparableConv2d) for m in regular.modules())
    full = ablations.ablated(tiny(tmp_path), "DeepLabV3+").model
    assert sum(isinstance(m, SeparableConv2d) for m in full.modules()) == 5  # 3 ASPP + 2 decoder


def test_measure_trains_and_scores_one_row(tmp_path, monkeypatch):
    config = tiny(tmp_path)
    trained = []

    def spy(run, **kwargs):  # the network fit trains is the changed one, without validation
        trained.append((type(run.model.decoder).__name__, run.val_set, run.config.steps))
        return fit(run, **kwargs)

    monkeypatch.setattr(ablations, "fit", spy)
    row = ablations.measure(config, "no decoder")
    assert trained == [("_Logits", None, 2)]
    assert row["change"] == "no decoder" and row["seed"] == 0 and row["seconds"] > 0
    model = ablations.ablated(config, "no decoder").model
    assert row["gmacs"] == round(count_macs(model, torch.randn(1, 3, 64, 64)) / 1e9, 3)
    assert set(row["trimap"]) == {str(w) for w in ablations.TRIMAP_WIDTHS}
    assert 0 <= row["miou"] <= 1 and len(row["iou"]) == 5
    assert not (tmp_path / "runs").exists()  # no checkpoint written


def test_scores_are_those_of_the_predictions(tmp_path):
    """mIoU and trimap come from the arg-max of the network on the validation images."""
    run = ablations.ablated(tiny(tmp_path), "DeepLabV3+")
    got = ablations.scores(run, widths=(1, 3))
    run.model.eval()
    images = torch.stack([run.val_set[i][0] for i in range(3)])
    masks = torch.stack([run.val_set[i][1] for i in range(3)])
    with torch.no_grad():
        preds = run.model(images).argmax(dim=1)
    assert got["trimap"]["3"] == pytest.approx(trimap_miou(preds, masks, 5, 3))
    hits = [(preds == c) & (masks == c) for c in range(5)]
    either = [(preds == c) | (masks == c) for c in range(5)]
    iou = [h.sum().item() / e.sum().item() for h, e in zip(hits, either, strict=True) if e.any()]
    assert got["miou"] == pytest.approx(sum(iou) / len(iou))


def test_compare_continues_from_its_results_file(tmp_path, monkeypatch):
    trained = []

    def fake(config, change):
        trained.append((change, config.seed))
        return {"change": change, "seed": config.seed, "miou": 0.5}

    monkeypatch.setattr(ablations, "measure", fake)
    results = tmp_path / "rows.json"
    rows = ablations.compare(tiny(tmp_path), (0, 1), ("DeepLabV3+", "no decoder"), results)
    assert trained == [("DeepLabV3+", 0), ("no decoder", 0), ("DeepLabV3+", 1), ("no decoder", 1)]
    assert json.loads(results.read_text()) == rows
    trained.clear()
    again = ablations.compare(tiny(tmp_path), (0, 1, 2), ("DeepLabV3+",), results)
    assert trained == [("DeepLabV3+", 2)]  # the others were read back
    assert [(r["change"], r["seed"]) for r in again] == [
        ("DeepLabV3+", 0), ("DeepLabV3+", 1), ("DeepLabV3+", 2)]  # fmt: skip


def test_compare_refuses_another_settings_file_and_real_datasets(tmp_path, monkeypatch):
    monkeypatch.setattr(ablations, "measure", lambda config, change: 1 / 0)  # never trains
    results = tmp_path / "rows.json"
    results.write_text(json.dumps([{"change": "DeepLabV3+", "seed": 0, "setting": "x"}]))
    with pytest.raises(ValueError, match="holds runs of x"):
        ablations.compare(tiny(tmp_path), (0,), ("DeepLabV3+",), results)
    with pytest.raises(ValueError, match="train on the shapes"):
        ablations.compare(tiny(tmp_path, dataset="pets"), (0,), ("DeepLabV3+",))


def test_summarize_pairs_runs_by_seed():
    """Hand-computed: two seeds, the differences taken seed by seed."""
    table = [("DeepLabV3+", 0, 0.6, 10.0, 0.70, 0.40, 0.5, 0.6, 0.65),
             ("DeepLabV3+", 1, 0.6, 12.0, 0.60, 0.30, 0.4, 0.5, 0.55),
             ("no decoder", 0, 0.5, 8.0, 0.65, 0.30, 0.4, 0.5, 0.6),
             ("no decoder", 1, 0.5, 9.0, 0.62, 0.28, 0.4, 0.5, 0.5)]  # fmt: skip
    got = ablations.summarize(table)
    assert got["no decoder"]["delta"] == pytest.approx([-0.05, 0.02])
    assert got["no decoder"]["delta_band"] == pytest.approx([-0.10, -0.02])
    assert got["no decoder"]["seconds"] == 8.0 and got["no decoder"]["gmacs"] == 0.5
    assert got["DeepLabV3+"]["miou"] == pytest.approx(0.65)
    assert got["DeepLabV3+"]["trimap"][8] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="has seeds"):
        ablations.summarize(table[:3])


def test_papers_differences_are_their_tables_numbers():
    """The differences are the quoted percentages' (DeepLabv3+ Tables 3 and 5, DeepLabv3
    Tables 1 and 5, as the sources say)."""
    for change, (delta, _, source) in ablations.PAPER.items():
        a, b = (float(v) for v in source.split(": ")[1].split(" %")[0].split(" vs "))
        assert math.isclose(delta, round(a - b, 2)), change


def _stored_table(notebook: str) -> list[tuple]:
    cells = json.loads((ROOT / "notebooks" / notebook).read_text())["cells"]
    for cell in cells:
        if "STORED = [" not in "".join(cell["source"]):
            continue
        for node in ast.parse("".join(cell["source"])).body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "STORED":
                return ast.literal_eval(node.value)
    raise AssertionError("no STORED table")


def test_notebook_08_shows_the_committed_benchmark():
    """Notebook 08's stored table is benchmarks/results/ablations_avx2.json's rows."""
    report = json.loads((ROOT / "benchmarks/results/ablations_avx2.json").read_text())
    assert len({row["seed"] for row in report["rows"]}) >= 3
    assert set(ablations.ABLATIONS) == {row["change"] for row in report["rows"]}
    assert _stored_table("08_evaluation_and_inference.ipynb") == ablations.as_table(report["rows"])


def _markdown_rows(report: dict, margin: bool) -> list[str]:
    """The README tables' rows, computed from a committed report (``margin``: the ×1.14 column
    of the AVX2 table, a real AVX2 laptop's time)."""
    summary = ablations.summarize(ablations.as_table(report["rows"]))
    rows = []
    for change, row in summary.items():
        cells = [change, f"{row['gmacs']:.2f}", f"{row['seconds']:.0f}"]
        cells += [f"{row['seconds'] * 1.14 / 60:.1f} min"] if margin else []
        cells.append(f"{row['miou']:.3f}")
        if change == "DeepLabV3+":
            cells += ["(reference)", "", ""]
        else:
            cells.append(" / ".join(f"{d:+.3f}" for d in row["delta"]))
            cells.append(" / ".join(f"{d:+.3f}" for d in row["delta_band"]))
            cells.append(f"{ablations.PAPER[change][0]:+.2f}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


@pytest.mark.parametrize(("kernels", "margin"), [("avx2", True), ("avx512", False)])
def test_the_readmes_tables_are_the_committed_benchmarks(kernels, margin):
    """Each row of the READMEs' ablation tables is computed from benchmarks/results (a rerun
    that is committed without its tables, or the reverse, fails here)."""
    report = json.loads((ROOT / f"benchmarks/results/ablations_{kernels}.json").read_text())
    rows = _markdown_rows(report, margin)
    for readme in ("README.md", "benchmarks/README.md"):
        text = (ROOT / readme).read_text(encoding="utf-8")
        missing = [row for row in rows if row not in text]
        assert missing == [], f"{readme} lacks rows of {kernels}: {missing}"
