"""The hybrid cell + offset head, retrieval refinement and the county-level loss."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from _training_helpers import make_dataset
from torch.nn import functional

from geoguess_utils import inference
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data.datamodule import GeoDataModule
from geoguess_utils.data.settings import CacheSettings, CellSettings, EmbeddingSettings
from geoguess_utils.errors import ConfigError
from geoguess_utils.geo import borders, projection
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.experimental.hybrid import HybridTask
from geoguess_utils.tasks.experimental.retrieval import RetrievalSettings, RetrievalTask, refine
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.registry import TASKS
from geoguess_utils.training.callbacks import TaskDataLink


def _context(n: int = 200, scheme: str = "square") -> tuple[GeoContext, np.ndarray, np.ndarray]:
    lat, lon = borders.sample_points(n, np.random.default_rng(5), "mainland")
    return GeoContext.fit(lat, lon, spacing_deg=0.6, scheme=scheme), lat, lon


def test_refine_searches_only_the_top_cells_and_reports_empty_ones():
    bank = functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1)
    xy = torch.tensor([[0.0, 0.0], [10.0, 0.0], [100.0, 100.0], [110.0, 100.0]], dtype=torch.float64)
    cls = torch.tensor([0, 0, 1, 1])
    # the query looks like cell 0's rows, but the head is sure of cell 1: only cell 1's rows vote
    query = functional.normalize(torch.tensor([[1.0, 0.05]]), dim=1)
    probs = torch.tensor([[0.1, 0.9, 0.0]], dtype=torch.float64)
    points, found = refine(probs, query, bank, xy, cls, RetrievalSettings(1, 1, 0.05))
    assert bool(found[0])
    assert torch.allclose(points[0], torch.tensor([110.0, 100.0], dtype=torch.float64))  # most similar in cell 1
    # with two cells searched the overall most similar row wins
    points, _ = refine(probs, query, bank, xy, cls, RetrievalSettings(2, 1, 0.05))
    assert torch.allclose(points[0], torch.tensor([0.0, 0.0], dtype=torch.float64))
    # a top cell without stored training locations: nothing found
    probs = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    _, found = refine(probs, query, bank, xy, cls, RetrievalSettings(1, 4, 0.05))
    assert not bool(found[0])


def test_retrieval_settings_are_checked():
    with pytest.raises(ConfigError, match="retrieval_cells"):
        RetrievalSettings(-1)
    with pytest.raises(ConfigError, match="retrieval_neighbours"):
        RetrievalSettings(2, 0)
    with pytest.raises(ConfigError, match="temperature"):
        RetrievalTask(pretrained=False, retrieval_cells=2, retrieval_temperature=0.0)


def test_hybrid_decodes_class_point_plus_offset():
    context, lat, lon = _context()
    task = HybridTask(backbone="resnet18", pretrained=False, offset_scale_km=60.0)
    task.configure_context(context, 32)
    k = context.num_classes
    assert task.net.head[-1].out_features == 3 * k
    classes = context.assign(lat[:6], lon[:6])
    x, y = projection.to_projected(lat[:6], lon[:6])
    scaled = np.column_stack(context.scaler.transform(x, y))
    batch = {"class_index": torch.as_tensor(classes), "xy_scaled": torch.as_tensor(scaled)}
    targets = task.offset_targets(batch)
    outputs = torch.zeros(6, 3 * k)
    outputs[torch.arange(6), torch.as_tensor(classes)] = 20.0  # sure of the true cell
    assert targets.abs().max() < 1.0  # 0.6-degree cells: every location lies within 60 km of its class point
    offsets = outputs[:, k:].view(6, k, 2)
    offsets[torch.arange(6), torch.as_tensor(classes)] = torch.atanh(targets)
    decoded = task.decode(outputs).numpy()
    assert np.abs(decoded[:, 0] - lat[:6]).max() < 1e-4 and np.abs(decoded[:, 1] - lon[:6]).max() < 1e-4
    task.hparams.offset_decoding = "weighted"
    assert np.abs(task.decode(outputs).numpy()[:, 0] - lat[:6]).max() < 1e-3
    # the loss: cell cross-entropy alone when the offsets are right, more when they are not
    batch["latlon"] = torch.as_tensor(np.column_stack([lat[:6], lon[:6]]))
    right = task.loss(outputs, batch)
    ce = functional.cross_entropy(outputs[:, :k], batch["class_index"])
    assert torch.isclose(right, ce, atol=1e-5)
    wrong = outputs.clone()
    wrong[:, k:] += 2.0
    assert task.loss(wrong, batch) > right + 0.4
    with pytest.raises(ConfigError, match="offset_decoding"):
        HybridTask(pretrained=False, offset_decoding="median")


def test_county_loss_is_cross_entropy_of_summed_cell_probabilities():
    context, lat, lon = _context(800, scheme="county")
    task = ClassificationTask(backbone="resnet18", pretrained=False, county_loss_weight=0.5)
    task.configure_context(context, 32)
    logits = torch.randn(5, context.num_classes)
    classes = torch.as_tensor(context.assign(lat[:5], lon[:5]))
    county = torch.as_tensor(context.class_table["county_index"].to_numpy())
    probs = torch.softmax(logits, dim=1)
    expected = -torch.log(torch.stack([probs[i, county == county[c]].sum() for i, c in enumerate(classes)])).mean()
    assert torch.isclose(task.county_loss(logits, classes), expected, atol=1e-6)
    total = task.loss(logits, {"class_index": classes, "latlon": None})
    assert torch.isclose(total, functional.cross_entropy(logits, classes) + 0.5 * expected, atol=1e-6)
    square, _, _ = _context()
    with pytest.raises(ConfigError, match="county"):
        ClassificationTask(backbone="resnet18", pretrained=False, county_loss_weight=1.0).configure_context(square)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("hybrid") / "root", 30, size=32, seed=4)


def test_hybrid_with_retrieval_trains_saves_and_predicts(root, tmp_path):
    module = GeoDataModule(
        roots=[str(root)],
        image_size=32,
        batch_size=8,
        augment=False,
        cells=CellSettings(scheme="county"),
        cache=CacheSettings(dir=str(tmp_path / "cache")),
        embeddings=EmbeddingSettings(enabled=True),
    )
    task = HybridTask(
        backbone="resnet18",
        pretrained=False,
        freeze_backbone_epochs="all",
        retrieval_cells=50,
        retrieval_neighbours=1,
        retrieval_temperature=0.01,
    )
    trainer = pl.Trainer(
        max_epochs=2, logger=False, enable_progress_bar=False, default_root_dir=tmp_path, callbacks=[TaskDataLink()]
    )
    trainer.fit(task, datamodule=module)
    assert TASKS["hybrid"] is HybridTask
    assert bool(task.bank_filled.all()) and len(task.bank_filled) == len(module.dataset("train"))
    path = tmp_path / "hybrid.ckpt"
    trainer.save_checkpoint(path)
    split_csv = tmp_path / "split.csv"
    module.split.to_csv(split_csv, index=False)
    train = inference.predict(path, [root], split="train", split_csv=split_csv, cache_dir=tmp_path / "c2")
    # all cells searched and one neighbour: each training location finds itself
    assert float(np.median(train.table["error_km"])) < 1.0
    loaded = load_task(path)
    assert isinstance(loaded, HybridTask) and loaded.context.scheme_name == "county"
    assert bool(loaded.bank_filled.all())
    tested = trainer.test(task, datamodule=module, verbose=False)[0]
    assert 0 < tested["test/mean_km"] < 500
