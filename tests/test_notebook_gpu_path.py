"""Notebook 04's full path (``QUICK = False``, ``configs/gpu_full.yaml``), shrunk to run on a CPU.

``make notebooks`` and the real-like test run notebook 04 in QUICK mode only, so nothing else
runs the cells of a full run: the config-driven task, the frozen epochs followed by
fine-tuning, early stopping, the config's loader workers and settings, and the cross-check
with ``geoguess fit``'s parser. Here the notebook runs with ``QUICK = False``,
``CONFIG = "gpu_full"`` and its ``SMOKE`` parameter (for tests only): the offline
``efficientnet_lite0`` in place of ResNeXt-101 (whose ImageNet weights would be downloaded),
32 px views, batches of 4, one training batch per epoch, three epochs (the config's two
frozen ones, then one fine-tuning epoch), on the CPU in fp32, with one loader worker.
Everything else comes from ``gpu_full.yaml`` as written.

The notebook runs in a scratch project (a ``pyproject.toml`` and a copy of the config), so
its runs and figures go to ``tmp_path`` and not into the project's ``runs/`` and
``figures/generated/``; its dataset is a small synthetic one in ``tmp_path`` and its caches
go to a ``XDG_CACHE_HOME`` there. A probe cell appended to the executed copy (never to the
notebook file) reports what the run did.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _training_helpers import ONE_THREAD_ENV

PROJECT = Path(__file__).resolve().parents[1]
NOTEBOOK = PROJECT / "notebooks" / "04_training.ipynb"
PARAMETERS_CELL = "04-02"
"""Id of the notebook's parameters cell, whose assignments the test replaces."""

SMOKE = {
    "model.init_args.backbone": "efficientnet_lite0",  # its ImageNet weights ship with a package: no download
    "model.init_args.pretrained": True,
    "data.image_size": 32,
    "data.batch_size": 4,
    "data.num_workers": 1,  # a worker process, as the config's 16 would be, but one
    "trainer.max_epochs": 3,  # gpu_full's 2 frozen epochs, then 1 fine-tuning epoch
    "trainer.limit_train_batches": 1,
    "trainer.accelerator": "cpu",
    "trainer.precision": "32-true",
}
"""The notebook's ``SMOKE`` parameter here: only what a CPU run in a minute or two needs."""

LOCATIONS = 60
"""Locations of the synthetic dataset: 48 training, 6 validation, 6 test."""

PROBE = """
import dataclasses as _dataclasses
import json as _json

_fresh = ClassificationTask(**MODEL_ARGS)  # the backbone as it was before any training
_fresh.configure_context(dm.context, dm.image_size)
_before = dict(_fresh.net.backbone.named_parameters())
_moved = {}
for _name, _run in (("classification", classifier), ("regression", regressor)):
    _after = dict(load_task(_run.last_checkpoint).net.backbone.named_parameters())
    _moved[_name] = max(float((_after[k] - _before[k]).detach().abs().max()) for k in _before)
print("PROBE " + _json.dumps({
    "config": config.name,
    "quick": QUICK,
    "model_args": {k: MODEL_ARGS[k] for k in ("backbone", "pooling", "freeze_backbone_epochs", "scheduler")},
    "image_size": dm.image_size,
    "batch_size": dm.batch_size,
    "num_workers": dm.num_workers,
    "loader": _dataclasses.asdict(dm.loader),
    "embeddings": dm.embeddings.enabled,
    "reload_dataloaders": trainer.reload_dataloaders_every_n_epochs,
    "precision": str(trainer.precision),
    "max_epochs": trainer.max_epochs,
    "patience": [cb.patience for cb in trainer.callbacks if isinstance(cb, pl.callbacks.EarlyStopping)],
    "epochs": {name: len(table) for name, table in curves.items()},
    "backbone_moved": _moved,
    "run_root": str(RUN_ROOT),
    "figures": str(FIGURES),
}))
"""
"""Code run after the notebook's last cell, in its kernel: what the run used and did, as one JSON line."""


def set_parameters(source: str, values: dict[str, Any]) -> str:
    """The parameters cell with each ``NAME = ...`` line of ``values`` replaced by ``NAME = repr(value)``.

    Raises:
        AssertionError: A name is not assigned exactly once at the start of a line (the
            parameters cell changed: this test must change with it).
    """
    for name, value in values.items():
        source, count = re.subn(
            rf"^{re.escape(name)} = .*$", lambda _, n=name, v=value: f"{n} = {v!r}", source, flags=re.M
        )
        assert count == 1, f"the parameters cell assigns {name} {count} times, not once"
    return source


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook's parameters cell, found by its id."""
    found = [cell for cell in notebook.cells if cell.get("id") == PARAMETERS_CELL]
    assert len(found) == 1 and found[0].cell_type == "code", f"no code cell with id {PARAMETERS_CELL}"
    return found[0]


def guarded_state() -> dict[str, str]:
    """What running the notebook must not change: ``git status`` of the paths it could write, and its file."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "--", "configs", "figures", str(NOTEBOOK)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {"git status": status, "notebook": hashlib.sha256(NOTEBOOK.read_bytes()).hexdigest()}


def scratch_project(folder: Path) -> Path:
    """A project root for the run: a ``pyproject.toml``, a copy of ``configs/gpu_full.yaml``, ``notebooks/``."""
    (folder / "configs").mkdir(parents=True)
    (folder / "notebooks").mkdir()
    (folder / "pyproject.toml").write_text('[project]\nname = "scratch"\n')
    shutil.copy2(PROJECT / "configs" / "gpu_full.yaml", folder / "configs" / "gpu_full.yaml")
    return folder


def run_full_path(notebook: nbformat.NotebookNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Execute ``notebook`` with QUICK off, gpu_full and :data:`SMOKE` on a small synthetic dataset.

    Returns:
        The probe's report, plus ``"outputs"``: the text output of each code cell by id.
    """
    from nbclient import NotebookClient

    from geoguess_utils.datasets.synthetic.write import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, LOCATIONS, size=48, seed=4, workers=1)
    project = scratch_project(tmp_path / "project")
    cell = parameters_cell(notebook)
    cell.source = set_parameters(
        cell.source,
        {"GEOGUESS_DATA_DIR": str(data), "QUICK": False, "CONFIG": "gpu_full", "SMOKE": SMOKE},
    )
    notebook.cells.append(nbformat.v4.new_code_cell(PROBE))
    monkeypatch.delenv("GEOGUESS_DATA_DIR", raising=False)
    for name, value in {
        "MPLBACKEND": "Agg",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # the dataset's image and embedding caches
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH", "")])),
        **ONE_THREAD_ENV,
    }.items():
        monkeypatch.setenv(name, value)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(project / "notebooks")}}
    )
    try:
        client.execute()
    finally:
        nbformat.write(notebook, tmp_path / "executed.ipynb")  # for a look after a failure
    outputs = {
        cell.get("id"): "".join(out.get("text", "") for out in cell.get("outputs", []) if out.output_type == "stream")
        for cell in notebook.cells
        if cell.cell_type == "code"
    }
    lines = [line for text in outputs.values() for line in text.splitlines() if line.startswith("PROBE ")]
    assert len(lines) == 1, "the probe cell printed no report"
    report = json.loads(lines[0].removeprefix("PROBE "))
    report["outputs"] = outputs
    report["project"] = str(project)
    return report


def test_parameters_cell_holds_the_parameters_the_test_sets() -> None:
    cell = parameters_cell(nbformat.read(NOTEBOOK, as_version=4))
    changed = set_parameters(cell.source, {"QUICK": False, "CONFIG": "gpu_full", "SMOKE": SMOKE})
    assert "QUICK = False" in changed and f"SMOKE = {SMOKE!r}" in changed
    namespace: dict[str, Any] = {}
    exec(compile(changed, "parameters", "exec"), namespace)  # still plain assignments
    assert namespace["SMOKE"] == SMOKE and namespace["CONFIG"] == "gpu_full"
    defaults: dict[str, Any] = {}
    exec(compile(cell.source, "parameters", "exec"), defaults)
    assert defaults["QUICK"] is True and defaults["SMOKE"] is None, "a learner's default run is QUICK, without SMOKE"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a kernel, two three-epoch runs and the parser on two shared cores
def test_gpu_full_path_runs_shrunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    before = guarded_state()
    report = run_full_path(nbformat.read(NOTEBOOK, as_version=4), tmp_path, monkeypatch)
    assert guarded_state() == before, "running the notebook changed the project's files"

    gpu_full = yaml.safe_load((PROJECT / "configs" / "gpu_full.yaml").read_text())
    init_args = gpu_full["model"]["init_args"]
    assert report["config"] == "gpu_full.yaml" and report["quick"] is False
    # the config as written, except what SMOKE changed
    assert report["model_args"] == {
        "backbone": "efficientnet_lite0",
        "pooling": init_args["pooling"],
        "freeze_backbone_epochs": init_args["freeze_backbone_epochs"],
        "scheduler": init_args["scheduler"],
    }
    assert (report["image_size"], report["batch_size"], report["num_workers"]) == (32, 4, 1)
    assert (
        report["loader"]
        == gpu_full["data"]["loader"]
        == {"pin_memory": True, "persistent_workers": True, "drop_last": True}
    )
    # gpu_full leaves the embedding cache off: the frozen epochs read images, and the loaders are not rebuilt
    # every epoch (which, with pinned memory and persistent workers, Lightning warns can be unstable)
    assert "embeddings" not in gpu_full["data"] and report["embeddings"] is False
    assert report["reload_dataloaders"] == 0
    assert report["precision"] == "32-true" and report["max_epochs"] == 3
    assert report["patience"] == [gpu_full["early_stopping"]["patience"]], "early stopping as the config says"
    # every epoch ran (early stopping had no reason to stop), and the one after the frozen ones trained the backbone
    assert init_args["freeze_backbone_epochs"] == 2
    assert report["epochs"] == {"classification": 3, "regression": 3}
    for name, moved in report["backbone_moved"].items():
        assert moved > 0, f"{name}: the backbone did not change in the fine-tuning epoch"
    outputs = report["outputs"]
    assert "backbone frozen for 2 epoch(s), then fine-tuned" in outputs["04-08"]
    for told in ("32-true on cpu", "1 loader worker(s)", "frozen epochs from images", "early stopping after 6 epochs"):
        assert told in outputs["04-08"], told
    assert "epoch 3/3" in outputs["04-24"] and "epoch 3/3" in outputs["04-26"]
    command = outputs["04-41"]
    assert command.startswith("geoguess fit --config configs/gpu_full.yaml"), command
    for key, value in SMOKE.items():
        assert f"--{key} {json.dumps(value) if not isinstance(value, str) else value}" in command, key
    assert "--data.reading.expected_source_size null" in command  # the sample's small photos pass validation
    # the run and the figures stayed in the scratch project
    project = Path(report["project"]).resolve()
    assert Path(report["run_root"]).is_relative_to(project) and Path(report["figures"]).is_relative_to(project)
    assert (Path(report["run_root"]) / "classification" / "checkpoints" / "best.ckpt").is_file()
