"""A lean core: one task registry, variants that measured worse kept apart, removed options refused clearly."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task, write_checkpoint

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import CheckpointError
from geoguess_utils.tasks.base import GeoTask
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.experimental.retrieval import RetrievalTask
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.registry import TASKS, class_path


@pytest.fixture(scope="module")
def context(croatia_points) -> GeoContext:
    lat, lon = croatia_points
    return GeoContext.fit(lat[:200], lon[:200], spacing_deg=0.6)


def test_one_registry_names_every_task_and_its_class_path():
    assert set(TASKS) == {"classification", "regression", "retrieval", "hybrid", "knn"}
    for name, cls in TASKS.items():
        assert cls.task_name == name and issubclass(cls, GeoTask)
        module, _, attribute = class_path(name).rpartition(".")
        assert getattr(importlib.import_module(module), attribute) is cls
    for name in ("retrieval", "hybrid", "knn"):
        assert ".tasks.experimental." in class_path(name)
    with pytest.raises(KeyError, match="choose one of classification"):
        class_path("ensemble-of-dreams")


def test_the_core_classifier_carries_no_option_of_the_variants():
    accepted = ClassificationTask.accepted_arguments()
    assert not {"retrieval_cells", "retrieval_neighbours", "heads"} & accepted
    assert {"retrieval_cells", "label_smoothing_tau_km"} <= RetrievalTask.accepted_arguments()


def _rewrite(path, **changes):
    data = torch.load(path, weights_only=True)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        data[section][field] = value
    torch.save(data, path)
    return path


def test_a_checkpoint_with_several_heads_is_refused_saying_how_to_retrain(context, tmp_path):
    path = write_checkpoint(tiny_task(ClassificationTask, context), tmp_path / "heads.ckpt")
    _rewrite(path, hyper_parameters__heads=3)
    with pytest.raises(CheckpointError, match=r"heads=3.*no longer exists.*geoguess fit"):
        load_task(path)
    _rewrite(path, hyper_parameters__heads=1)  # the value that meant "off" loads as before
    assert isinstance(load_task(path), ClassificationTask)


def test_an_older_classifier_saved_with_retrieval_on_loads_as_the_retrieval_task(context, tmp_path):
    task = tiny_task(RetrievalTask, context, retrieval_cells=4)
    path = write_checkpoint(task, tmp_path / "older.ckpt")
    _rewrite(path, geoguess__task="classification")  # how the classifier with retrieval_cells=4 was recorded
    loaded = load_task(path)
    assert isinstance(loaded, RetrievalTask) and loaded.retrieval.top_cells == 4
    batch = {"images": torch.rand(2, 4, 3, 32, 32), "uuid": ["a", "b"]}
    with torch.inference_mode():
        expected = task.predict_step(batch, 0)
        got = loaded.predict_step(batch, 0)
    torch.testing.assert_close(got["latlon"], expected["latlon"])
    assert pd.Series(got["uuid"]).tolist() == ["a", "b"]


def test_older_class_paths_and_removed_options_are_named_before_parsing(tmp_path):
    from geoguess_utils.training.moved_keys import moved_key_problems

    (problem,) = moved_key_problems(["--model.class_path", "geoguess_utils.tasks.KNNTask"])
    assert "moved to geoguess_utils.tasks.experimental.knn.KNNTask" in problem
    assert moved_key_problems(["--model.class_path", class_path("knn")]) == []
    (problem,) = moved_key_problems(["--model.init_args.retrieval_cells", "5"])
    assert "RetrievalTask" in problem
    assert (
        moved_key_problems(["--model.class_path", class_path("retrieval"), "--model.init_args.retrieval_cells", "5"])
        == []
    )
    config = tmp_path / "old.yaml"
    config.write_text("model:\n  class_path: geoguess_utils.tasks.ClassificationTask\n  init_args:\n    heads: 3\n")
    problems = moved_key_problems(["--config", str(config)])
    assert len(problems) == 2
    assert any("geoguess_utils.tasks.classification.ClassificationTask" in p for p in problems)
    assert any("heads" in p and "removed" in p for p in problems)


# ----------------------------------------------------------------------------- freezing: one setting, one callback


def test_freezing_is_one_setting_checked_up_front():
    from geoguess_utils.errors import ConfigError
    from geoguess_utils.tasks.freezing import BackboneFreezing, frozen_at

    assert [frozen_at(epoch, 2) for epoch in range(4)] == [True, True, False, False]
    assert all(frozen_at(epoch, "all") for epoch in range(50))
    for bad in (-1, "always", 1.5, True):
        with pytest.raises(ConfigError, match="freeze_backbone_epochs"):
            ClassificationTask(pretrained=False, freeze_backbone_epochs=bad)
    assert "head_only" not in ClassificationTask.accepted_arguments()
    callbacks = ClassificationTask(pretrained=False).configure_callbacks()
    assert [type(c) for c in callbacks].count(BackboneFreezing) == 1
    hooks = ("on_train_epoch_start", "on_train_epoch_end", "on_train_batch_start")
    assert not any(hook in GeoTask.__dict__ for hook in hooks)  # the task itself no longer freezes anything


def test_all_parses_from_the_command_line_and_an_older_head_only_checkpoint_loads_frozen(
    context, tmp_path, monkeypatch
):
    from geoguess_utils.training.lightning_cli import GeoguessCLI
    from geoguess_utils.training.moved_keys import moved_key_problems

    monkeypatch.chdir(tmp_path)
    cli = GeoguessCLI(
        args=[
            "--model",
            class_path("classification"),
            "--model.init_args.freeze_backbone_epochs",
            "all",
            "--trainer.logger",
            "false",
            "--data.roots",
            f"[{tmp_path}]",
        ],
        epoch_lines=False,
    )
    assert cli.model.freeze_epochs == "all" and cli.model.backbone_frozen
    path = write_checkpoint(tiny_task(ClassificationTask, context), tmp_path / "old.ckpt")
    _rewrite(path, hyper_parameters__head_only=True, hyper_parameters__freeze_backbone_epochs=0)
    assert load_task(path).freeze_epochs == "all"
    (problem,) = moved_key_problems(["--model.init_args.head_only", "true"])
    assert "freeze_backbone_epochs: all" in problem


def test_the_task_and_the_data_module_do_not_read_each_other():
    import inspect

    from geoguess_utils.data import datamodule
    from geoguess_utils.tasks import base

    assert "datamodule" not in inspect.getsource(base)  # the label space arrives through LabelSpaceLink
    assert "lightning_module" not in inspect.getsource(datamodule)  # features arrive through a FeatureSource


def test_a_task_that_trains_nothing_takes_no_optimiser_or_schedule_options():
    from geoguess_utils.tasks.experimental.knn import KNNTask

    taken = KNNTask.accepted_arguments()
    assert {"neighbours", "backbone", "pooling"} <= taken
    assert not {"lr", "optimizer", "scheduler", "weight_decay", "freeze_backbone_epochs", "head_hidden"} & taken
    assert {"lr", "scheduler", "freeze_backbone_epochs"} <= ClassificationTask.accepted_arguments()
    with pytest.raises(TypeError):
        KNNTask(lr=0.1)


def test_the_optimiser_and_schedule_are_grouped_and_checked_once():
    from geoguess_utils.errors import ConfigError

    task = ClassificationTask(pretrained=False, lr=3e-4, scheduler="none", plateau_patience=5)
    assert task.optimization.lr == 3e-4 and task.schedule.scheduler == "none"
    for bad in ({"optimizer": "sgd"}, {"scheduler": "cosine"}, {"monitor_mode": "up"}, {"lr": 0.0}):
        with pytest.raises(ConfigError):
            ClassificationTask(pretrained=False, **bad)
