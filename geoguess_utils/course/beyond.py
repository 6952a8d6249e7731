"""Notebook 06's plumbing: heads trained from the embedding cache, their errors, and the committed ablation.

Notebook 06 changes one thing at a time in the 2022 recipe and trains only what sits on
the frozen backbone, from each view's cached features (the embedding cache of notebook 04).
This module holds what the notebook needs but does not teach:

* :func:`split_features` reads each split's cached features once (section 1);
* :func:`new_task`, :func:`feature_batch`, :func:`train_head` and :func:`errors_km` build a
  head, train it from them and score it, with the loop of ``benchmarks/ablation.py``
  (sections 1 to 5);
* :func:`results_table` lines the measured variants up against the recipe (section 6);
* :func:`committed_comparison` reads the committed ablation runs and says which rows
  differ from the recipe by more than their spread (section 7);
* :func:`plot_view_attention` draws one location's views and attention weights (section 4).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geoguess_utils.course.ablation import committed_ablations, load_ablation
from geoguess_utils.data.splits import SPLITS
from geoguess_utils.errors import ConfigError, DataError
from geoguess_utils.evaluation import summarise_km

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure

    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.data.datamodule import GeoDataModule
    from geoguess_utils.tasks.base import GeoTask
    from geoguess_utils.tasks.classification import ClassificationTask

ENSEMBLES_FILE = "benchmarks/ablation_ensembles.json"
"""The committed ensemble and augmented-copies run, relative to the project root."""

MAIN_RUN = "all 2,000 locations"
"""Title of the committed run over the whole settlement sample in :func:`committed_ablations`."""

VERDICTS: tuple[str, ...] = ("better", "within noise", "worse")
"""What :func:`noise_verdict` says of a variant against the recipe."""


@dataclass(frozen=True)
class SplitFeatures:
    """One split's cached per-view backbone features and where its locations are.

    Made in notebook 06, section 1 ('The recipe, and a fair comparison'); sections 2 to 6 train
    and score heads on it.

    Attributes:
        features: Per-view features, shape (N, V, F) float32 (V = 4 views in heading order).
        latlon: True positions, shape (N, 2) float64, degrees.
        uuids: The locations' ids, length N.
        paths: Their view files, shape (N, V) str (to show a location's photos).
    """

    features: torch.Tensor
    latlon: np.ndarray
    uuids: list[str]
    paths: np.ndarray

    def __len__(self) -> int:
        return len(self.uuids)


def split_features(
    datamodule: GeoDataModule, task: GeoTask, splits: Sequence[str] = SPLITS
) -> dict[str, SplitFeatures]:
    """Each split's per-view features from the data module's embedding cache.

    Used in notebook 06, section 1 ('The recipe, and a fair comparison').

    The cache is the one notebook 04 and ``geoguess fit`` use (one file per split, keyed by
    the backbone, its weights, the image size and the image files): what an earlier run
    computed is read back, anything missing is computed once and kept for the next run.

    Args:
        datamodule: A set-up :class:`~geoguess_utils.data.datamodule.GeoDataModule`.
        task: A task whose network is built (:meth:`configure_context`); its frozen backbone
            computes the features. Every head trained on them must share that backbone.
        splits: Split names to read.

    Returns:
        ``{split: SplitFeatures}`` in ``splits`` order.
    """
    import torch

    from geoguess_utils.embeddings import TaskFeatures

    source = TaskFeatures(task)
    out = {}
    for name in splits:
        cached = datamodule.feature_dataset(name, source)
        base = datamodule.dataset(name)
        features = torch.from_numpy(np.asarray(cached.cache.array, dtype=np.float32))
        out[name] = SplitFeatures(features, np.asarray(base.latlon, dtype=np.float64), list(base.uuids), base.paths)
    return out


def feature_batch(part: SplitFeatures, context: GeoContext, rows: np.ndarray | None = None) -> dict[str, Any]:
    """A batch of cached features as a classifier reads it, with the classes of ``context``.

    Used by :func:`train_head` (notebook 06, sections 1 to 5).

    Args:
        part: One split's features.
        context: The cells to label the locations with (any fitted scheme).
        rows: Row indices into ``part`` (default: every row, in order).

    Returns:
        ``{"view_features": (B, V, F) float32, "class_index": (B,) int64, "latlon": (B, 2) float64}``.
    """
    import torch

    chosen = np.arange(len(part)) if rows is None else np.asarray(rows, dtype=np.int64)
    latlon = part.latlon[chosen]
    classes = np.asarray(context.assign(latlon[:, 0], latlon[:, 1]), dtype=np.int64)
    return {
        "view_features": part.features[torch.from_numpy(chosen)],
        "class_index": torch.from_numpy(classes),
        "latlon": torch.from_numpy(latlon),
    }


def new_task(arguments: Mapping[str, Any], context: GeoContext, image_size: int, seed: int) -> ClassificationTask:
    """A classifier with the given arguments, its network built for ``context`` from ``seed``.

    Used in notebook 06, section 1 ('The recipe, and a fair comparison': every variant of
    sections 1 to 4) and section 5 ('An ensemble of separately trained heads': the members).

    Seeding torch first makes the start reproducible: the randomly drawn layers (the view
    attention) come from ``seed``; a linear head starts at zero weights and the log prior
    as its bias whatever the seed.

    Args:
        arguments: :class:`~geoguess_utils.tasks.classification.ClassificationTask` arguments
            (e.g. the recipe's, with one change).
        context: The cells it classifies into.
        image_size: Side of the views the backbone's features were computed from, pixels.
        seed: Seed of the initial weights.
    """
    import torch

    from geoguess_utils.tasks.classification import ClassificationTask

    torch.manual_seed(seed)
    task = ClassificationTask(**arguments)
    task.configure_context(context, image_size)
    return task.eval()


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch CPU threads, then restore the previous number.

    Used by :func:`train_head` (notebook 06, sections 1 to 5).

    Heads this small train fastest on one thread; on a machine shared with other work two
    threads can be ten times slower (``benchmarks/ablation.py`` uses one as well).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_head(
    task: GeoTask,
    train: SplitFeatures,
    *,
    epochs: int,
    batch_size: int = 32,
    seed: int = 0,
    threads: int = 1,
) -> list[float]:
    """Train everything on top of the frozen backbone from cached features.

    Used in notebook 06, section 1 ('The recipe, and a fair comparison': every variant of
    sections 1 to 4) and section 5 ('An ensemble of separately trained heads': the members).

    The loop of ``benchmarks/ablation.py``: shuffled batches (the order drawn from ``seed``),
    AdamW with the task's ``lr`` and ``weight_decay`` on every parameter outside the
    backbone, and the task's own loss (:meth:`training_loss`, the one the Lightning
    ``Trainer`` calls). No validation and no early stopping: every variant gets the same
    budget. The initial weights are drawn when the task builds its network (seed torch
    before :meth:`configure_context` for a reproducible start; see :func:`new_task`).

    Args:
        task: A task with its network built on the cells it should learn (its context).
        train: The training split's features.
        epochs: Passes over the training split, >= 1.
        batch_size: Locations per step, >= 1.
        seed: Seed of the batch order (and of dropout, where the head has any).
        threads: Torch CPU threads while training (see :func:`torch_threads`).

    Returns:
        The mean training loss of each epoch, length ``epochs``. The task is left in eval mode.

    Raises:
        ConfigError: ``epochs`` or ``batch_size`` below 1, or a task without a network.
    """
    import torch

    if epochs < 1 or batch_size < 1:
        raise ConfigError(f"epochs and batch_size must be at least 1, got {epochs} and {batch_size}")
    net, context = task.net, task.context
    if net is None or context is None:
        raise ConfigError("the task has no network yet: call configure_context() first")
    backbone = {id(p) for p in net.backbone.parameters()}
    trainable = [p for p in task.parameters() if id(p) not in backbone and p.requires_grad]
    hparams = task.hparams
    order_rng = np.random.default_rng(seed)
    labelled = feature_batch(train, context)  # every training row once; batches are slices of it
    losses = []
    with torch_threads(threads):
        torch.manual_seed(seed)  # dropout, where a head has any
        optimizer = torch.optim.AdamW(trainable, lr=float(hparams.lr), weight_decay=float(hparams.weight_decay))
        for _ in range(int(epochs)):
            task.train()
            net.backbone.eval()
            order = torch.from_numpy(order_rng.permutation(len(train)))
            total, steps = 0.0, 0
            for begin in range(0, len(order), batch_size):
                rows = order[begin : begin + batch_size]
                batch = {key: value[rows] for key, value in labelled.items()}
                optimizer.zero_grad()
                loss, _ = task.training_loss(batch)
                loss.backward()
                optimizer.step()
                total, steps = total + float(loss.detach()), steps + 1
            losses.append(total / steps)
    task.eval()
    return losses


def errors_km(task: GeoTask, part: SplitFeatures, batch_size: int = 512) -> np.ndarray:
    """Great-circle error of the task's decoded point for every location of ``part``, km, shape (N,).

    Used in notebook 06, section 1 ('The recipe, and a fair comparison': every variant) and
    section 5 ('An ensemble of separately trained heads': the members and the ensemble).

    Args:
        task: A classifier whose network is built (an ensemble too).
        part: One split's features.
        batch_size: Locations per forward pass.
    """
    import torch

    from geoguess_utils.geo import distance

    points = []
    task.eval()
    with torch.no_grad():
        for begin in range(0, len(part), batch_size):
            features = part.features[begin : begin + batch_size]
            points.append(task.decode(task.batch_outputs({"view_features": features})).numpy())
    predicted = np.concatenate(points)
    return np.asarray(
        distance.haversine_km(part.latlon[:, 0], part.latlon[:, 1], predicted[:, 0], predicted[:, 1]), dtype=np.float64
    )


def results_table(results: Mapping[str, Mapping[str, Any]], recipe: str = "recipe") -> pd.DataFrame:
    """The measured variants side by side, with their ratio to the recipe.

    Used in notebook 06, section 6 ('The measurements side by side').

    Args:
        results: ``{variant: {"km": errors (N,) km, "classes": int, "seconds": float}}``, the
            recipe among them.
        recipe: Name of the recipe's entry.

    Returns:
        One row per variant (index ``variant``, in ``results`` order): ``classes``,
        ``mean_km``, ``median_km``, ``within_25_km`` (share), ``vs_recipe`` (mean / the
        recipe's mean) and ``seconds``.

    Raises:
        DataError: No recipe entry, or a variant scored on another number of locations.
    """
    if recipe not in results:
        raise DataError(f"no {recipe!r} among the measured variants ({', '.join(results)})")
    counts = {name: len(np.asarray(entry["km"])) for name, entry in results.items()}
    if len(set(counts.values())) != 1:
        raise DataError(f"the variants were scored on different numbers of locations: {counts}")
    rows = []
    for name, entry in results.items():
        summary = summarise_km(entry["km"], thresholds_km=(25.0,))
        rows.append(
            {
                "variant": name,
                "classes": int(entry["classes"]),
                "mean_km": summary["mean_km"],
                "median_km": summary["median_km"],
                "within_25_km": summary["acc_25_km"],
                "seconds": float(entry.get("seconds", math.nan)),
            }
        )
    table = pd.DataFrame(rows).set_index("variant")
    table.insert(4, "vs_recipe", table["mean_km"] / table.loc[recipe, "mean_km"])
    return table


def noise_verdict(mean_km: float, sd_km: float, recipe_km: float, recipe_sd_km: float) -> str:
    """``"better"``, ``"worse"`` or ``"within noise"``: is the gap to the recipe larger than the spread?

    The rule of ``BENCHMARKS.md``: a variant whose mean is closer to the recipe's than the
    larger of the two standard deviations over seeds is within noise. Used by
    :func:`committed_comparison` (notebook 06, section 7).

    Args:
        mean_km: The variant's test mean error, km (mean over seeds).
        sd_km: Its standard deviation over seeds, km.
        recipe_km: The recipe's, km.
        recipe_sd_km: The recipe's standard deviation, km.
    """
    gap = mean_km - recipe_km
    if abs(gap) <= max(abs(sd_km), abs(recipe_sd_km)):
        return "within noise"
    return "better" if gap < 0 else "worse"


def committed_comparison(root: str | os.PathLike[str]) -> pd.DataFrame:
    """The committed ablation on the whole settlement sample, ensembles included, with verdicts.

    Used in notebook 06, section 7 ('The committed ablation: several seeds, and what did not help').

    Reads the main run of :func:`~geoguess_utils.course.ablation.committed_ablations` and
    :data:`ENSEMBLES_FILE` (the same seeds; its recipe and best rows repeat the main run's
    and are left out).

    Args:
        root: The project root.

    Returns:
        One row per variant (index ``variant``): ``mean_km``, ``mean_km_sd``, ``median_km``,
        ``vs_recipe``, ``classes`` (mean over seeds; NaN where a file has none), ``run``
        (``"ablation"`` or ``"ensembles"``) and ``verdict`` (:func:`noise_verdict`).

    Raises:
        DataError: A file is missing or malformed, or the two runs used other seeds.
    """
    main = committed_ablations(root)[MAIN_RUN]
    ensembles = load_ablation(Path(root) / ENSEMBLES_FILE)
    if sorted(main.settings.get("seeds", [])) != sorted(ensembles.settings.get("seeds", [])):
        raise DataError(
            f"{ENSEMBLES_FILE} used seeds {ensembles.settings.get('seeds')}, the main ablation "
            f"{main.settings.get('seeds')}: not comparable"
        )
    columns = ["variant", "mean_km", "mean_km_sd", "median_km", "vs_recipe", "classes"]
    extra = ensembles.summary[~ensembles.summary["variant"].isin(main.summary["variant"])]
    parts = [main.summary.assign(run="ablation"), extra.assign(run="ensembles")]
    table = pd.concat([part.reindex(columns=[*columns, "run"]) for part in parts], ignore_index=True).set_index(
        "variant"
    )
    recipe = table.loc["recipe"]
    table["verdict"] = [
        noise_verdict(row.mean_km, row.mean_km_sd, recipe["mean_km"], recipe["mean_km_sd"])
        for row in table.itertuples()
    ]
    return table


def plot_view_attention(
    views: Mapping[int, np.ndarray], layer_weights: Sequence[np.ndarray], title: str | None = None
) -> Figure:
    """One location's views above its attention weights, one matrix per encoder layer.

    Used in notebook 06, section 4 ('Attention over the four views, with a heading embedding').

    Args:
        views: ``{heading: uint8 image (H, W, 3)}``, in heading order.
        layer_weights: Per layer, the attention weights (V, V) averaged over the heads:
            row ``i`` is how much the view of heading ``i`` (the query) takes from each view
            (the keys); every row sums to 1.
        title: Title of the figure.

    Returns:
        The figure: V photo panels on top, one heat map per layer below (weights 0 to 1).

    Raises:
        DataError: No layer, or matrices that are not (V, V) for the V views given.
    """
    import matplotlib.pyplot as plt

    headings = list(views)
    count = len(headings)
    if not layer_weights or any(np.shape(w) != (count, count) for w in layer_weights):
        shapes = [np.shape(w) for w in layer_weights]
        raise DataError(f"need one ({count}, {count}) matrix per layer for {count} views, got {shapes}")
    layers = len(layer_weights)
    fig = plt.figure(figsize=(2.4 * max(count, 2 * layers), 2.6 + 3.4), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.6, 3.4])
    for ax, heading in zip(top.subplots(1, count), headings, strict=True):
        ax.imshow(views[heading])
        ax.set_title(f"{heading}°")
        ax.axis("off")
    labels = [f"{h}°" for h in headings]
    image = None
    for layer, (ax, weights) in enumerate(zip(np.atleast_1d(bottom.subplots(1, layers)), layer_weights, strict=True)):
        matrix = np.asarray(weights, dtype=np.float64)
        image = ax.imshow(matrix, cmap="Purples", vmin=0.0, vmax=1.0)
        for i in range(count):
            for j in range(count):
                colour = "white" if matrix[i, j] > 0.6 else "black"
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=9, color=colour)
        ax.set_xticks(range(count), labels)
        ax.set_yticks(range(count), labels)
        ax.set_xlabel("attends to (key)")
        ax.set_ylabel("view (query)" if layer == 0 else "")
        ax.set_title(f"encoder layer {layer + 1}")
    bottom.colorbar(image, ax=bottom.axes, shrink=0.8, label="attention weight (mean over heads)")
    if title:
        fig.suptitle(title)
    return fig
