"""Several heads on one backbone: their combination, their training, checkpoints and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _reliability_helpers import tiny_task, write_checkpoint

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.errors import ConfigError
from geoguess_utils.models import multiview
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.hybrid import HybridTask
from geoguess_utils.tasks.loading import load_task


def _net(heads: int, pooling: str = "attention") -> multiview.MultiViewNet:
    torch.manual_seed(0)
    return multiview.MultiViewNet(
        "resnet18", num_outputs=6, pretrained=False, pooling=pooling, attention_dim=16, heads=heads
    ).eval()


def test_the_outputs_are_the_log_of_the_heads_mean_probabilities():
    net = _net(3)
    features = torch.randn(5, 4, 512)
    with torch.no_grad():
        per_head = net.head_outputs(features)
        combined = net.from_view_features(features)
    assert per_head.shape == (3, 5, 6)
    expected = torch.log(torch.softmax(per_head, dim=2).mean(dim=0))
    torch.testing.assert_close(combined, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(per_head[0], per_head[1])  # each head has its own attention fusion
    images = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(images), net.from_view_features(net.view_features(images)))


def test_one_head_is_the_original_network():
    one = _net(1)
    assert not hasattr(one, "extra_heads")
    assert not any(key.startswith("extra_heads.") for key in one.state_dict())
    features = torch.randn(3, 4, 512)
    with torch.no_grad():
        torch.testing.assert_close(one.from_view_features(features), one.head(one.fuse(features)))
        assert one.head_outputs(features).shape == (1, 3, 6)
    three = _net(3)
    extra = {key for key in three.state_dict() if key.startswith("extra_heads.")}
    assert {key.split(".")[1] for key in extra} == {"0", "1"}
    assert set(three.state_dict()) - extra == set(one.state_dict())


def test_each_head_learns_from_its_own_loss_and_starts_from_the_prior(croatia_points):
    lat, lon = croatia_points
    context = GeoContext.fit(lat[:400], lon[:400], spacing_deg=0.5)
    task = ClassificationTask(backbone="resnet18", pretrained=False, pooling="attention", heads=2)
    task.configure_context(context, image_size=32)
    batch = {
        "view_features": torch.randn(8, 4, 512),
        "class_index": torch.as_tensor(context.assign(lat[400:408], lon[400:408])),
        "latlon": torch.as_tensor(np.column_stack([lat[400:408], lon[400:408]])),
    }
    with torch.no_grad():  # zero output layers: every head answers with the training prior
        per_head = task._training_outputs(batch)
    torch.testing.assert_close(per_head[0], per_head[1])
    for member in (task.net.head, task.net.extra_heads[0].head):
        with torch.no_grad():
            member[-1].weight.normal_(std=0.05)
    per_head = task._training_outputs(batch)
    losses = [task.loss(head, batch) for head in per_head]
    task.log = lambda *args, **kwargs: None  # no trainer attached
    loss = task.training_step(batch, 0)
    torch.testing.assert_close(loss, torch.stack(losses).mean())
    loss.backward()
    assert task.net.extra_heads[0].fusion.heading.grad is not None
    assert task.net.head[-1].weight.grad is not None


def test_a_checkpoint_of_several_heads_loads_and_predicts_the_same(croatia_points, tmp_path):
    lat, lon = croatia_points
    context = GeoContext.fit(lat[:300], lon[:300], scheme="county_split")
    task = tiny_task(ClassificationTask, context, pooling="attention", heads=3, county_loss_weight=1.0)
    with torch.no_grad():
        for member in (task.net.head, *(m.head for m in task.net.extra_heads)):
            member[-1].weight.normal_(std=0.5)
    path = write_checkpoint(task, tmp_path / "heads.ckpt")
    loaded = load_task(path)
    assert loaded.net.heads == 3 and loaded.hparams.heads == 3
    images = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), task(images))
        torch.testing.assert_close(loaded.decode(loaded(images)), task.decode(task(images)))


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ClassificationTask(pretrained=False, heads=0), "heads must be a whole number >= 1"),
        (lambda: ClassificationTask(pretrained=False, heads=2.5), "heads must be a whole number"),
        (lambda: ClassificationTask(pretrained=False, heads=2, retrieval_cells=5), "retrieval works on one"),
        (lambda: HybridTask(pretrained=False, heads=2), "hybrid head's offsets are per head"),
        (lambda: multiview.MultiViewNet("resnet18", pretrained=False, heads=0), "heads must be"),
    ],
)
def test_impossible_heads_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_heads_train_through_the_command_line_from_the_cache_and_on_images(tmp_path, monkeypatch):
    from _training_helpers import fit_args, make_dataset, use_tiny_backbone

    from geoguess_utils.training import lightning_cli

    use_tiny_backbone(monkeypatch)
    monkeypatch.chdir(tmp_path)
    root = make_dataset(tmp_path / "root", 40, size=32, seed=3)
    # epoch 0 from the embedding cache, epoch 1 fine-tuning on images
    args = fit_args(root, tmp_path, "--model.init_args.heads", "2", "--data.embeddings.enabled", "true", epochs=2)
    assert lightning_cli.run(args) == 0
    (run,) = sorted((tmp_path / "runs" / "quick_cpu").glob("version_*"))
    loaded = load_task(run / "checkpoints" / "last.ckpt")
    assert loaded.net.heads == 2 and loaded.net.pooling == "attention"
