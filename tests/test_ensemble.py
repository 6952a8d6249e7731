"""Ensembles of separately trained members: one backbone, a fusion and head per member, probabilities averaged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task
from _training_helpers import fit_args, make_dataset, use_tiny_backbone

from geoguess_utils import cli
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import CheckpointError, ConfigError
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.ensemble import assemble_ensemble
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.regression import RegressionTask
from geoguess_utils.training.ensemble_fit import save_ensemble

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ensemble") / "root", 40, size=32, seed=11)


@pytest.fixture(scope="module")
def context(root):
    table = pd.read_csv(root / "data.csv")
    return GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=0.5)


def _members(context, cls=ClassificationTask, n=3, **kwargs):
    """``n`` tiny tasks with one backbone and different random tops (as differently seeded runs have)."""
    members = []
    for seed in range(n):
        torch.manual_seed(0)  # the same backbone
        task = tiny_task(cls, context, pooling="attention", **kwargs)
        torch.manual_seed(100 + seed)
        for layer in task.net.head.modules():
            if isinstance(layer, torch.nn.Linear):
                torch.nn.init.normal_(layer.weight, std=0.5)
        members.append(task)
    return members


def test_an_ensemble_averages_its_members_probabilities(context):
    members = _members(context)
    ensemble = assemble_ensemble(members)
    features = torch.randn(5, 4, members[0].net.backbone.num_features)
    with torch.no_grad():
        wanted = torch.stack([torch.softmax(m.batch_outputs({"view_features": features}), dim=1) for m in members])
        got = torch.softmax(ensemble.batch_outputs({"view_features": features}), dim=1)
    torch.testing.assert_close(got, wanted.mean(dim=0), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(wanted[0], wanted[1])  # the members differ, so the test can fail
    images = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():  # from images: one backbone pass, the same combination
        from_images = torch.softmax(ensemble(images), dim=1)
        by_hand = torch.stack([torch.softmax(m(images), dim=1) for m in members]).mean(dim=0)
    torch.testing.assert_close(from_images, by_hand, rtol=1e-5, atol=1e-6)


def test_a_regression_ensemble_averages_the_outputs(context):
    members = _members(context, RegressionTask, n=2)
    ensemble = assemble_ensemble(members)
    features = torch.randn(3, 4, members[0].net.backbone.num_features)
    with torch.no_grad():
        wanted = torch.stack([m.batch_outputs({"view_features": features}) for m in members]).mean(dim=0)
        torch.testing.assert_close(ensemble.batch_outputs({"view_features": features}), wanted)


def test_members_with_other_backbones_or_cells_are_refused(context, root):
    members = _members(context, n=2)
    with torch.no_grad():
        next(members[1].net.backbone.parameters()).add_(0.1)  # as if fine-tuned
    with pytest.raises(ConfigError, match="freeze_backbone_epochs: all"):
        assemble_ensemble(members)
    table = pd.read_csv(root / "data.csv")
    other = GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=1.0)
    with pytest.raises(ConfigError, match="other cells"):
        assemble_ensemble([_members(context, n=1)[0], _members(other, n=1)[0]])
    with pytest.raises(ConfigError, match="2 to 16"):
        assemble_ensemble(members[:1])


def test_a_saved_ensemble_loads_and_predicts_the_same(context, tmp_path):
    ensemble = assemble_ensemble(_members(context))
    path = save_ensemble(ensemble, tmp_path / "ensemble.ckpt")
    loaded = load_task(path)
    assert loaded.ensemble == 3 and len(loaded.extra_heads) == 2
    images = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict_latlon(images), ensemble.predict_latlon(images))


def test_a_crafted_member_count_is_refused_before_anything_is_built(context, tmp_path):
    path = save_ensemble(assemble_ensemble(_members(context, n=2)), tmp_path / "e.ckpt")
    data = torch.load(path, weights_only=True)
    data["hyper_parameters"]["ensemble"] = 16
    torch.save(data, tmp_path / "crafted.ckpt")
    with pytest.raises(CheckpointError, match="ensemble of 16, the weights hold 2"):
        load_task(tmp_path / "crafted.ckpt")


def test_an_ensemble_is_never_trained_as_one_network(context):
    ensemble = assemble_ensemble(_members(context, n=2))
    with pytest.raises(ConfigError, match="assembled from separately trained members"):
        ensemble.setup("fit")


def test_fit_refuses_an_ensemble_whose_backbone_trains(root, tmp_path, monkeypatch, capsys):
    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["fit", *fit_args(root, tmp_path, "--ensemble", "2")]) == 2
    assert "--model.freeze_backbone_epochs all" in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_fit_ensemble_trains_members_one_after_another_and_predicts_as_one(root, tmp_path, monkeypatch, capsys):
    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    extra = ["--ensemble", "2", "--model.init_args.freeze_backbone_epochs", "all", "--data.embeddings.enabled", "true"]
    assert cli.main(["fit", *fit_args(root, tmp_path, *extra, epochs=2)]) == 0
    err = capsys.readouterr().err
    assert "member 1 of 2 (seed 0)" in err and "member 2 of 2 (seed 1)" in err
    (run,) = [p for p in (tmp_path / "runs" / "quick_cpu").iterdir() if p.is_dir()]
    best = run / "checkpoints" / "best.ckpt"
    assert f"best checkpoint: {best.relative_to(tmp_path)} (an ensemble of 2" in err
    members = sorted((run / "members").iterdir())
    assert [m.name for m in members] == ["0", "1"]
    first, second = (load_task(m / "checkpoints" / "best.ckpt") for m in members)
    assert not torch.equal(first.net.head[-1].weight, second.net.head[-1].weight)  # own seeds, own batch orders
    ensemble = load_task(best)
    assert ensemble.ensemble == 2
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["test/mean_km"].notna().sum() == 1  # the ensemble was tested once
    out = tmp_path / "predictions.csv"
    assert cli.main(["predict", "--ckpt", str(best), "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 0
    assert len(pd.read_csv(out)) == 40


def test_members_arguments_give_each_its_seed_and_folder(tmp_path):
    from geoguess_utils.training.ensemble_fit import member_args

    args = member_args(["--config", "c.yaml"], tmp_path / "run", 2, seed=7)
    assert args[:2] == ["--config", "c.yaml"]
    assert args[args.index("--seed_everything") + 1] == "9"
    assert args[args.index("--checkpoint.dirpath") + 1] == str(Path(tmp_path / "run" / "members" / "2" / "checkpoints"))
    assert args[args.index("--trainer.logger") + 1] == "false"


def test_an_untrained_task_has_no_ensemble_by_default(context):
    task = tiny_task(ClassificationTask, context)
    assert task.ensemble == 1 and task.extra_heads is None
    with pytest.raises(ConfigError, match="1 to 16"):
        ClassificationTask(ensemble=0)
