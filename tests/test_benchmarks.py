"""Smoke tests of the benchmark suite's pieces, with tiny settings (no timing assertions)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import data_speed  # noqa: E402
import data_wait  # noqa: E402
import gpu_train  # noqa: E402
import inference  # noqa: E402
import report  # noqa: E402
import run_all  # noqa: E402


def test_markdown_table_formats_numbers_and_checks_row_length():
    table = report.markdown_table(("a", "b", "c"), [(1234567, 0.012345, None), ("x|y", 12.5, True)])
    lines = table.splitlines()
    assert lines[0] == "| a | b | c |"
    assert lines[1] == "|---|---|---|"
    assert lines[2] == "| 1,234,567 | 0.0123 | – |"
    assert lines[3] == "| x\\|y | 12.5 | yes |"
    with pytest.raises(ValueError, match="2 cells"):
        report.markdown_table(("a", "b", "c"), [(1, 2)])


def test_target_status():
    assert report.Target("t", 25.0, 20.0).status == "PASS"
    assert report.Target("t", 19.9, 20.0).status == "FAIL"
    assert report.Target("t", None, 20.0).status == "NOT MEASURED"
    assert report.Target("w", 4.9, 5.0, higher_is_better=False).status == "PASS"
    assert report.Target("w", 5.0, 5.0, higher_is_better=False).status == "FAIL"
    assert report.Target("t", 25.0, 20.0).to_dict()["status"] == "PASS"


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from geoguess_utils.datasets.synthetic import write

    root = tmp_path_factory.mktemp("bench") / "tiny"
    write.generate_dataset(root, 3, size=64, seed=5, workers=1)
    return root, run_all.validated_table(root)


def test_decode_rates_on_a_tiny_dataset(tiny_dataset, tmp_path):
    _, table = tiny_dataset
    rows = data_speed.decode_rates(data_speed.view_paths(table), [16], tmp_path, rounds=1, min_seconds=0.0)
    (row,) = rows
    assert row["size"] == 16 and row["images"] == 12
    for name in ("full", "draft", "cache"):
        assert row[f"{name}_images_per_s"] > 0
    assert row["draft_vs_full"] > 0 and row["cache_vs_full"] > 0
    assert row["cache_bytes"] == 3 * 4 * 16 * 16 * 3


def test_loader_rates_cover_every_source_and_worker_count(tiny_dataset, tmp_path):
    _, table = tiny_dataset
    rows = data_speed.loader_rates(table, 16, tmp_path, workers=[0], batch_size=2, epochs=1)
    assert [r["source"] for r in rows] == ["JPEG draft decode", "uint8 cache (memory)", "uint8 cache + augmentation"]
    assert all(r["workers"] == 0 and r["locations_per_s"] > 0 for r in rows)


def test_dataset_summary(tiny_dataset):
    _, table = tiny_dataset
    summary = data_speed.dataset_summary(table)
    assert summary["locations"] == 3 and summary["jpegs"] == 12 and summary["mean_jpeg_bytes"] > 0


def test_data_wait_summary_shares():
    records = [
        {"epoch": 0, "batch": 0, "wait_s": 1.0, "step_s": 2.0, "frozen": True},
        {"epoch": 0, "batch": 1, "wait_s": 0.1, "step_s": 2.0, "frozen": True},
        {"epoch": 1, "batch": 0, "wait_s": 0.5, "step_s": 4.0, "frozen": False},
        {"epoch": 1, "batch": 1, "wait_s": 0.3, "step_s": 4.0, "frozen": False},
    ]
    s = data_wait.summarize(records)
    assert s["all"]["wait_share"] == pytest.approx(1.9 / 12.0)
    assert s["steady"]["wait_share"] == pytest.approx(0.4 / 6.0)
    assert s["frozen"]["batches"] == 2 and s["frozen"]["wait_share"] == pytest.approx(1.1 / 4.0)
    assert s["unfrozen_steady"]["max_wait_s"] == pytest.approx(0.3)


def test_data_wait_meter_records_each_batch(tmp_path):
    class Trainer:
        current_epoch = 0
        is_global_zero = True

    out = tmp_path / "wait.json"
    meter = data_wait.DataWaitMeter(str(out))
    module = torch.nn.Module()
    meter.on_train_epoch_start(Trainer(), module)
    for index in range(3):
        meter.on_train_batch_start(Trainer(), module, None, index)
        meter.on_train_batch_end(Trainer(), module, None, None, index)
    meter.on_train_end(Trainer(), module)
    records = __import__("json").loads(out.read_text())
    assert [r["batch"] for r in records] == [0, 1, 2]
    assert all(r["wait_s"] >= 0 and r["step_s"] >= 0 for r in records)


def test_run_measured_reports_the_child_peak_memory():
    result = inference.run_measured(
        [sys.executable, "-c", "b = bytearray(80 * 2**20); b[::4096] = b'x' * len(b[::4096])"]
    )
    assert result["rc"] == 0
    assert result["peak_rss_mib"] >= 80
    assert result["wall_s"] > 0


def test_render_markdown_marks_missing_sections_and_gpu():
    results = {
        "command": "python benchmarks/run_all.py",
        "started": "2025-01-01T00:00:00+00:00",
        "finished": "2025-01-01T00:10:00+00:00",
        "device": "CPU test",
        "cpu_count": 2,
        "python": "3.12",
        "torch": "2",
        "load_average_start": [1.0, 1.0, 1.0],
        "load_average_end": [2.0, 1.0, 1.0],
        "sections": {"data": {"error": "RuntimeError: boom", "wall_s": 1.0, "load_before": [1], "load_after": [1]}},
        "data": None,
        "gpu": None,
    }
    text = report.render_markdown(results, findings="Some finding.")
    assert text.startswith("# Benchmarks\n")
    assert "python benchmarks/run_all.py" in text.split("## Targets")[0]
    assert "**Failed:** `RuntimeError: boom`" in text
    assert "GPU numbers are not yet measured" in text
    assert "NOT MEASURED" in text and "Some finding." in text


def test_gpu_targets_from_recorded_rows():
    gpu = {
        "device": "Card",
        "rows": [
            {"setup": "original", "size": 112, "images_per_s": 100.0},
            {"setup": "recipe", "size": 112, "images_per_s": 3500.0, "speedup_vs_original": 35.0},
            {"setup": "recipe", "size": 224, "images_per_s": 800.0, "speedup_vs_original": 8.0},
        ],
    }
    status = {t.name: t.status for t in report.gpu_targets(gpu)}
    assert status["GPU recipe images/s, 112 px (Card)"] == "PASS"
    assert status["GPU recipe images/s, 224 px (Card)"] == "FAIL"
    assert status["GPU recipe vs original setup, 224 px (Card)"] == "PASS"
    assert all(t.status == "NOT MEASURED" for t in report.gpu_targets(None))


def test_gpu_script_helpers():
    assert gpu_train.peak_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989e12)
    assert gpu_train.peak_flops("NVIDIA H100 PCIe") == pytest.approx(756e12)
    assert gpu_train.peak_flops("Some other card") is None
    flops = gpu_train.train_flops_per_image("resnet18", 32)
    assert flops == pytest.approx(3 * 0.0745e9, rel=0.1)  # resnet18: about 1.82 GFLOP forward at 224 px


@pytest.mark.parametrize("config", ["quick_cpu.yaml", "gpu_full.yaml"])
def test_config_model_settings_are_task_parameters(config):
    settings = yaml.safe_load((REPO / "configs" / config).read_text())["model"]
    module, name = settings["class_path"].rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    accepted = cls.accepted_arguments()
    assert set(settings["init_args"]) <= accepted


def test_gpu_recipe_config():
    cfg = yaml.safe_load((REPO / "configs" / "gpu_full.yaml").read_text())
    assert cfg["trainer"]["precision"] == "bf16-mixed"
    assert cfg["model"]["init_args"]["backbone"] == "resnext101_32x8d"
    assert cfg["model"]["init_args"]["channels_last"] is True
    assert cfg["model"]["init_args"]["compile_backbone"] is False  # Triton would need a C compiler at run time
    assert cfg["data"]["num_workers"] > 0 and cfg["early_stopping"]["monitor"] == "val/mean_km"
    assert cfg["data"]["loader"]["drop_last"] is True
    assert cfg["data"]["cache"]["images"] == "memory"


def test_compile_backbone_compiles_only_the_backbone_when_training_starts():
    from geoguess_utils.models.multiview import MultiViewNet
    from geoguess_utils.tasks.classification import ClassificationTask

    task = ClassificationTask(backbone="resnet18", pretrained=False, compile_backbone=True)
    task.net = MultiViewNet("resnet18", num_outputs=3, pretrained=False)
    names = [name for name, _ in task.named_parameters()]
    task.on_fit_start()
    assert task.net.backbone._compiled_call_impl is not None
    assert task.net.head._compiled_call_impl is None
    assert [name for name, _ in task.named_parameters()] == names  # checkpoints keep their keys
    plain = ClassificationTask(backbone="resnet18", pretrained=False)
    plain.net = MultiViewNet("resnet18", num_outputs=3, pretrained=False)
    plain.on_fit_start()
    assert plain.net.backbone._compiled_call_impl is None


def test_quick_arguments_are_small():
    cfg = run_all.parse_args(["--quick"])
    assert cfg.data_locations <= 10 and cfg.predict_locations <= 50 and cfg.scale_locations <= 100
    full = run_all.parse_args([])
    assert full.data_locations == 150 and full.predict_locations == 1000 and full.scale_locations == 16_000
    assert np.array_equal(full.sizes, [224, 112, 56])


@pytest.mark.slow
@pytest.mark.parametrize("frozen_epochs, expected", [(1, torch.bfloat16), (0, torch.float32)])
def test_frozen_backbone_runs_in_bf16_on_cpus_where_it_pays(monkeypatch, croatia_points, frozen_epochs, expected):
    from geoguess_utils import precision
    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.tasks.classification import ClassificationTask

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    torch.manual_seed(0)
    lat, lon = croatia_points
    task = ClassificationTask(
        backbone="resnet18",
        pretrained=False,
        freeze_backbone_epochs=frozen_epochs,
        channels_last=True,
        cpu_bf16_frozen_backbone=True,
    )
    task.configure_context(GeoContext.fit(lat[:300], lon[:300], spacing_deg=0.5), image_size=32)
    seen = []
    task.net.backbone.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    images = torch.randn(2, 4, 3, 32, 32)
    outputs = task._training_outputs({"images": images})
    assert seen == [expected]
    assert outputs.dtype == torch.float32 and outputs.shape == (2, task.context.num_classes)
    with torch.no_grad():
        task.net.head[-1].weight.normal_()
        reference = task(images)
        relative_error = (task._training_outputs({"images": images}) - reference).norm() / reference.norm()
        # bf16 keeps about 3 significant digits per value; through a whole random
        # ResNet-18 the errors add up to a few percent, far from a wrong answer (~100%).
        assert relative_error < 0.1


def test_regenerating_the_report_keeps_the_sections_other_scripts_write():
    previous = (
        "# old tables\n\n<!-- ablation:start -->\n## Ablation\n| a | b |\n<!-- ablation:end -->\n\n"
        "<!-- serve_load:start -->\n## Serving\nold serving\n<!-- serve_load:end -->\n"
    )
    rendered = "# new tables\n\n<!-- serve_load:start -->\n## Serving\nnew serving\n<!-- serve_load:end -->\n"
    merged = report.keep_marked_sections(rendered, previous)
    assert merged.startswith("# new tables") and "# old tables" not in merged
    assert "## Ablation\n| a | b |" in merged  # kept, with its markers
    assert "new serving" in merged and "old serving" not in merged  # the fresh one wins
    assert report.keep_marked_sections(rendered, "") == rendered


def test_the_committed_report_keeps_its_marked_sections_through_a_render(tmp_path):
    text = (REPO / "BENCHMARKS.md").read_text()
    names = set(report._MARKED.findall(text))
    assert {"ablation", "serve_load", "embedding_cache"} <= names
    merged = report.keep_marked_sections("# tables\n", text)
    assert set(report._MARKED.findall(merged)) == names
