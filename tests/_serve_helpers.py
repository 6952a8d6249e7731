"""Helpers of the serving tests: a synthetic sample, tiny checkpoints in a models folder, multipart fields."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _reliability_helpers import tiny_task, write_checkpoint
from _training_helpers import make_dataset

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data.layout import HEADINGS
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.regression import RegressionTask

IMAGE_SIZE = 32


def _image_dependent(task, sample: Path, seed: int):
    """Give the (zero-initialised) output layer random weights scaled so that the outputs vary from photo to photo.

    An untrained backbone's features are tiny (about 1e-6), so the weights are scaled to
    give logits with a spread of about 2 over the sample's locations.
    """
    from geoguess_utils.data.images import load_views
    from geoguess_utils.serve.predictor import make_batch

    uuids = sample_uuids(sample)
    views = np.stack([load_views([sample / "images" / u / f"{h}.jpg" for h in HEADINGS], IMAGE_SIZE) for u in uuids])
    generator = torch.Generator().manual_seed(seed)
    head = task.net.head[-1]
    with torch.no_grad():
        features = task.net.features(make_batch(views, uuids, IMAGE_SIZE)["images"])
        weight = torch.randn(head.weight.shape, generator=generator)
        spread = (features @ weight.T).std(dim=0).mean()
        head.weight.copy_(weight * (2.0 / spread))
    return task


def build_models(base: Path, locations: int = 30) -> tuple[Path, Path]:
    """A synthetic sample and a models folder with a classifier, a regressor and three unusable entries.

    Returns:
        (sample root, models folder). The folder holds ``clf.ckpt`` and ``reg.ckpt`` (tiny
        untrained backbones, 32 px), ``junk.ckpt`` (not a checkpoint), ``plain.ckpt`` (a torch
        file that is no Lightning checkpoint), ``notes.txt`` and
        ``outside.ckpt``, a link to a real checkpoint outside the folder.
    """
    sample = make_dataset(base / "sample", locations, size=64, seed=5)
    table = pd.read_csv(sample / "data.csv")
    context = GeoContext.fit(table["latitude"], table["longitude"], spacing_deg=0.3)
    models = base / "models"
    models.mkdir()
    clf = _image_dependent(tiny_task(ClassificationTask, context, image_size=IMAGE_SIZE), sample, seed=1)
    write_checkpoint(clf, models / "clf.ckpt")
    reg = _image_dependent(tiny_task(RegressionTask, context, image_size=IMAGE_SIZE), sample, seed=2)
    write_checkpoint(reg, models / "reg.ckpt")
    (models / "junk.ckpt").write_bytes(b"this is not a checkpoint\n" * 10)
    torch.save({"weights": torch.zeros(2)}, models / "plain.ckpt")
    (models / "notes.txt").write_text("not a model\n")
    elsewhere = base / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(models / "clf.ckpt", elsewhere / "secret.ckpt")
    (models / "outside.ckpt").symlink_to(elsewhere / "secret.ckpt")
    return sample, models


def view_bytes(sample: Path, uuid: str) -> list[bytes]:
    """The four JPEGs of one sample location, headings 0/90/180/270."""
    return [(sample / "images" / uuid / f"{h}.jpg").read_bytes() for h in HEADINGS]


def view_fields(views: list[bytes], content_type: str = "image/jpeg") -> dict[str, tuple[str, bytes, str]]:
    """Multipart ``files=`` for the predict endpoint."""
    return {str(h): (f"{h}.jpg", data, content_type) for h, data in zip(HEADINGS, views, strict=True)}


def sample_uuids(sample: Path) -> list[str]:
    """The sample's uuids, sorted."""
    return sorted(p.name for p in (sample / "images").iterdir())


def truth(sample: Path) -> dict[str, tuple[float, float]]:
    """uuid -> (lat, lon) of the sample."""
    table = pd.read_csv(sample / "data.csv", dtype={"uuid": str})
    return {
        u: (float(a), float(b)) for u, a, b in zip(table["uuid"], table["latitude"], table["longitude"], strict=True)
    }


def finite_latlon(body: dict) -> bool:
    """Whether a prediction's coordinates are finite numbers."""
    return bool(np.isfinite([body["latitude"], body["longitude"]]).all())


def app_client(models: Path):
    """A context manager: the app over ``models`` behind a test client that answers errors as the server does."""
    import fastapi.testclient

    from geoguess_utils.serve.app import ServeConfig, create_app

    return fastapi.testclient.TestClient(create_app(ServeConfig(models_dir=models)), raise_server_exceptions=False)
