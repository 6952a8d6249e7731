r"""Ablation: the seed's recipe against each change alone and the best combination.

Every run starts from ``configs/lumen_recipe_cpu.yaml`` (square 0.3-degree cells, concatenated
views, one linear layer, plain cross-entropy, probability-weighted mean) and changes one
thing: the cell scheme, the head, the loss, the decoding or the view fusion. The backbone
is frozen in every run and its per-view features are computed once for every location of
the dataset (the embedding cache), so each run trains only what sits on top, for the same
number of epochs and batches: the same CPU budget per run, seconds each. Each variant runs
for every seed; a seed draws the split and the head's initialisation. Reported: test mean
and median km, mean ± sd over the seeds, and the best constant guess (the training
locations' geometric median) on the same test splits.

    python benchmarks/ablation.py --data data/synthetic_settlements --out benchmarks/ablation.json \\
        --markdown benchmarks/ablation.md
    python benchmarks/ablation.py --data data/synthetic_settlements --subset 100 --variants recipe best kNN

``--subset N`` keeps N locations of the dataset (drawn once with seed 0), for the
small-dataset case; the split then has about 0.8 N training locations.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from geoguess_utils import embeddings
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data import loading
from geoguess_utils.data.augment import AugmentedCopies, TrainAugmentation
from geoguess_utils.data.geodataset import GeoDataset
from geoguess_utils.data.splits import make_split
from geoguess_utils.errors import ConfigError
from geoguess_utils.evaluation import summarise_km
from geoguess_utils.geo import distance, projection
from geoguess_utils.io import atomic_write_text
from geoguess_utils.tasks.decoding import weighted_geometric_median
from geoguess_utils.tasks.ensemble import assemble_ensemble
from geoguess_utils.tasks.registry import TASKS

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "configs" / "lumen_recipe_cpu.yaml"
QUICK = REPO / "configs" / "quick_cpu.yaml"

BEST: dict[str, Any] = {
    "scheme": "county_split",
    "model": {"pooling": "attention", "label_smoothing_tau_km": 25.0, "county_loss_weight": 1.0, "lr": 3e-4},
}
"""The best combination measured, and the model of ``configs/quick_cpu.yaml`` (a test holds them equal).

county_split cells with the county loss, attention fusion, label smoothing, and the smaller
learning rate the attention head trains best with. Chosen on seeds 0-2; BENCHMARKS.md
reports it on seeds 3-5, which took no part in choosing.
"""

VIEW_DROPOUT: dict[str, float] = {"view_dropout": 0.3, "heading_dropout": 0.1}
"""What ``configs/quick_cpu.yaml`` adds to :data:`BEST`: training on random subsets of the views, so the
model answers from one to four photos. Measured apart, by ``benchmarks/views.py`` (BENCHMARKS.md, "Any
number of photos"), not by this ablation, whose rows all train on four views."""

VARIANTS: dict[str, dict[str, Any]] = {
    "recipe": {},
    "balanced cells": {"scheme": "balanced"},
    "county cells": {"scheme": "county"},
    "county split + county loss": {"scheme": "county_split", "model": {"county_loss_weight": 1.0}},
    "hybrid head": {"task": "hybrid"},
    "retrieval": {"task": "retrieval", "model": {"retrieval_cells": 5}},
    "MLP head": {"model": {"head_hidden": 512, "dropout": 0.3}},
    "label smoothing": {"model": {"label_smoothing_tau_km": 25.0}},
    "mean fusion": {"model": {"pooling": "mean"}},
    "attention fusion": {"model": {"pooling": "attention"}},
    "kNN": {"task": "knn", "model": {"neighbours": 5, "temperature": 0.05}},
    "best": BEST,
    "best, mean fusion (recipe lr)": {**BEST, "model": {**BEST["model"], "pooling": "mean", "lr": 1e-3}},
    "best, ensemble of 3": {**BEST, "ensemble": 3},
    "best, ensemble of 5": {**BEST, "ensemble": 5},
    "best, 4 augmented copies": {**BEST, "augmented_copies": 4},
    "best, plain + 4 augmented copies": {**BEST, "augmented_copies": 4, "with_plain": True},
    "best, ensemble of 3, 4 augmented copies": {**BEST, "ensemble": 3, "augmented_copies": 4},
    "best, ensemble of 3, plain + 4 augmented copies": {
        **BEST,
        "ensemble": 3,
        "augmented_copies": 4,
        "with_plain": True,
    },
}
"""Each variant as changes to the recipe: ``task`` (registry name), ``scheme``, ``scheme_params``,
``model`` arguments, ``ensemble``: that many heads trained one after another (their own
initialisations and batch orders) and averaged as ``geoguess fit --ensemble N`` does, and
``augmented_copies``: each epoch reads one of K augmented copies of every training location's
features, as ``--data.embeddings.augmented_copies K`` does."""

MEMBER_SEED_STEP = 1000
"""Member ``m`` of a seed ``s`` trains with seed ``s + 1000 m``: apart from every seed a table reports."""

_NOT_TASK_ARGUMENTS = ("scheduler", "plateau_patience", "plateau_factor", "freeze_backbone_epochs")

_NOT_ABLATED = ("backbone_lr_factor", "channels_last", "cpu_bf16_frozen_backbone", "freeze_batchnorm", "pretrained")
"""Task arguments that only matter once the backbone trains or for speed: equal by construction here."""


def recipe_settings(path: Path = RECIPE) -> dict[str, Any]:
    """The recipe's task arguments, cell settings, image size and batch size from its YAML config."""
    config = yaml.safe_load(path.read_text())
    model = dict(config["model"]["init_args"])
    data = config["data"]
    return {
        "model": {k: v for k, v in model.items() if k not in _NOT_TASK_ARGUMENTS},
        "cells": dict(data.get("cells", {})),
        "image_size": int(data["image_size"]),
        "batch_size": int(data["batch_size"]),
        "fractions": tuple(data.get("split", {}).get("fractions", (0.8, 0.1, 0.1))),
    }


def config_as_variant(path: Path = QUICK, recipe_path: Path = RECIPE) -> dict[str, Any]:
    """A YAML config as changes to the recipe: its cell scheme (and parameters) and differing task arguments.

    Raises:
        ConfigError: The config trains on another backbone, image size or batch size than
            the recipe, so the two would not share one budget.
    """
    recipe = recipe_settings(recipe_path)
    other = recipe_settings(path)
    shared = {"backbone": (recipe["model"]["backbone"], other["model"]["backbone"])}
    shared.update(
        image_size=(recipe["image_size"], other["image_size"]), batch_size=(recipe["batch_size"], other["batch_size"])
    )
    differ = [f"{k} {a!r} vs {b!r}" for k, (a, b) in shared.items() if a != b]
    if differ:
        raise ConfigError(f"{path} and {recipe_path} differ in {', '.join(differ)}: not the same budget")
    variant: dict[str, Any] = {}
    cells = other["cells"]
    if cells.get("scheme", "square") != recipe["cells"].get("scheme", "square"):
        variant["scheme"] = cells["scheme"]
    if cells.get("params"):
        variant["scheme_params"] = dict(cells["params"])
    model = {k: v for k, v in other["model"].items() if recipe["model"].get(k) != v and k not in _NOT_ABLATED}
    if model:
        variant["model"] = model
    return variant


def load_features(data: str, image_size: int, backbone: str, cache_dir: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Every location of ``data`` and its per-view backbone features (N, V, F) float32, cached."""
    locations = loading.load_locations([data], require_labels=True).reset_index(drop=True)
    embedder = embeddings.Embedder.by_name(backbone, pretrained=True)
    dataset = GeoDataset(locations, image_size, normalization=embedder.normalization)
    start = time.perf_counter()
    cache = embeddings.build_embeddings(embedder, dataset, cache_dir, f"ablation_{image_size}", batch_size=64)
    print(f"features of {len(locations)} locations ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return locations, np.asarray(cache.array, dtype=np.float32)


def load_copies(
    data: str, image_size: int, backbone: str, cache_dir: Path, copies: int, locations: pd.DataFrame
) -> np.ndarray:
    """Per-view features of ``copies`` augmented versions of every location, (K, N, V, F) float32, cached.

    The same copies ``--data.embeddings.augmented_copies K`` caches for a training split (the
    training augmentation, each copy seeded), here for every location of ``data``: the seeds'
    splits then pick their training rows from them.
    """
    embedder = embeddings.Embedder.by_name(backbone, pretrained=True)
    plain = GeoDataset(locations, image_size, normalization=embedder.normalization)
    dataset = AugmentedCopies(plain, copies, TrainAugmentation(), seed=0)
    start = time.perf_counter()
    name = f"ablation_{image_size}_copies"  # beside the plain features, never over them
    cache = embeddings.build_embeddings(embedder, dataset, cache_dir, name, batch_size=64)
    print(f"{copies} augmented copies ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    array = np.asarray(cache.array, dtype=np.float32)
    return array.reshape(copies, len(locations), *array.shape[1:])


def _copies_of(variant: dict[str, Any], copies: np.ndarray | None, features: np.ndarray) -> np.ndarray | None:
    """The copies a variant draws from: its first K augmented ones, with the plain features as one more if asked."""
    count = int(variant.get("augmented_copies", 0))
    if not count or copies is None:
        return None
    chosen = copies[:count]
    return np.concatenate([features[None], chosen]) if variant.get("with_plain") else chosen


def _batch(table: pd.DataFrame, features: np.ndarray, rows: np.ndarray, context: GeoContext) -> dict[str, Any]:
    part = table.iloc[rows]
    lat = part["latitude"].to_numpy(dtype=np.float64)
    lon = part["longitude"].to_numpy(dtype=np.float64)
    x, y = projection.to_projected(lat, lon, context.crs)
    scaled = np.column_stack(context.scaler.transform(x, y)).astype(np.float32)
    return {
        "view_features": torch.from_numpy(features[part["feature_row"].to_numpy()]),
        "class_index": torch.as_tensor(part["class_index"].to_numpy(dtype=np.int64)),
        "xy_scaled": torch.from_numpy(scaled),
        "latlon": torch.from_numpy(np.column_stack([lat, lon])),
        "uuid": part["uuid"].tolist(),
        "index": torch.as_tensor(rows, dtype=torch.int64),
    }


def best_constant_km(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
    """Test errors of one fixed guess for every location: the training locations' geometric median."""
    x, y = projection.to_projected(train["latitude"].to_numpy(), train["longitude"].to_numpy())
    points = torch.from_numpy(np.column_stack([x, y])[None] / 1000.0)
    centre = weighted_geometric_median(points, torch.ones(1, len(train), dtype=torch.float64))[0].numpy()
    lat, lon = projection.to_latlon(np.array([centre[0] * 1000.0]), np.array([centre[1] * 1000.0]))
    km = distance.haversine_km(test["latitude"].to_numpy(), test["longitude"].to_numpy(), lat[0], lon[0])
    return summarise_km(np.asarray(km))


def run_variant(
    variant: dict[str, Any],
    recipe: dict[str, Any],
    table: pd.DataFrame,
    features: np.ndarray,
    seed: int,
    epochs: int,
    copies: np.ndarray | None = None,
) -> dict[str, float]:
    """Train one variant's head from cached features for ``epochs`` epochs; its test errors.

    Args:
        variant: ``task``, ``scheme`` and ``model`` changes to the recipe.
        recipe: :func:`recipe_settings`.
        table: Every location, with ``feature_row`` (its row of ``features``).
        features: Per-view backbone features, (N, V, F) float32.
        seed: Split and initialisation seed.
        epochs: Passes over the training split.
        copies: Features of augmented copies, (K, N, V, F), for variants with ``augmented_copies``.

    Returns:
        ``summarise_km`` of the test split plus ``seconds`` and ``classes``.
    """
    torch.manual_seed(seed)
    split = make_split(table["uuid"].tolist(), recipe["fractions"], seed)
    table = table.merge(split, on="uuid")
    train = table[table["split"] == "train"].reset_index(drop=True)
    test = table[table["split"] == "test"].reset_index(drop=True)
    cells = {**recipe["cells"], **({"scheme": variant["scheme"]} if "scheme" in variant else {})}
    if "scheme" in variant:  # another scheme: the recipe's scheme parameters do not apply to it
        cells["params"] = {}
    cells["params"] = {**cells.get("params", {}), **variant.get("scheme_params", {})}
    context = GeoContext.fit(
        train["latitude"].to_numpy(),
        train["longitude"].to_numpy(),
        spacing_deg=float(cells.get("spacing_deg", 0.3)),
        scheme=cells.get("scheme", "square"),
        scheme_params=cells["params"],
    )
    train["class_index"] = context.assign(train["latitude"], train["longitude"])
    test["class_index"] = context.assign(test["latitude"], test["longitude"])
    arguments = {**recipe["model"], **copy.deepcopy(variant.get("model", {}))}
    start = time.perf_counter()
    members = [
        _train_head(
            variant,
            arguments,
            context,
            train,
            features,
            seed + MEMBER_SEED_STEP * member,  # the same split and cells, each member its own start and order
            epochs,
            recipe["batch_size"],
            recipe["image_size"],
            _copies_of(variant, copies, features),
        )
        for member in range(int(variant.get("ensemble", 1)))
    ]
    task = members[0] if len(members) == 1 else assemble_ensemble(members)
    with torch.no_grad():
        predicted = task.decode(task.batch_outputs(_batch(test, features, np.arange(len(test)), context))).numpy()
    km = distance.haversine_km(
        test["latitude"].to_numpy(), test["longitude"].to_numpy(), predicted[:, 0], predicted[:, 1]
    )
    result = summarise_km(np.asarray(km))
    result.update(seconds=time.perf_counter() - start, classes=context.num_classes)
    result["constant_mean_km"] = best_constant_km(train, test)["mean_km"]
    return result


def _train_head(
    variant: dict[str, Any],
    arguments: dict[str, Any],
    context: GeoContext,
    train: pd.DataFrame,
    features: np.ndarray,
    seed: int,
    epochs: int,
    batch_size: int,
    image_size: int,
    copies: np.ndarray | None = None,
) -> Any:
    """Build the variant's task and train what sits on the frozen backbone; the task in eval mode.

    With ``copies`` (K, N, V, F), each epoch reads one augmented copy per location, drawn at random.
    """
    torch.manual_seed(seed)
    task_cls = TASKS[variant.get("task", "classification")]
    accepted = task_cls.accepted_arguments()
    task = task_cls(**{k: v for k, v in arguments.items() if k in accepted})
    task.configure_context(context, image_size)
    net = task.net
    assert net is not None
    net.backbone.eval()
    backbone = {id(p) for p in net.backbone.parameters()}
    trainable = [p for p in net.parameters() if id(p) not in backbone]
    optimizer = torch.optim.AdamW(trainable, lr=float(arguments["lr"]), weight_decay=float(arguments["weight_decay"]))
    generator = np.random.default_rng(seed)
    passes = 1 if task.task_name == "knn" else epochs
    for _ in range(passes):
        net.train()
        order = generator.permutation(len(train))
        seen = features
        if copies is not None:  # one augmented copy of every location this epoch
            drawn = generator.integers(0, len(copies), size=copies.shape[1])
            seen = copies[drawn, np.arange(copies.shape[1])]
        for begin in range(0, len(order), batch_size):
            batch = _batch(train, seen, order[begin : begin + batch_size], context)
            if task.task_name == "knn":
                task.training_step(batch, 0)
                continue
            optimizer.zero_grad()
            loss, _ = task.training_loss(batch)
            loss.backward()
            optimizer.step()
    net.eval()
    return task


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise_runs(runs: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Per variant: mean and sd over seeds of test mean km, median km, seconds; classes; ratio to the recipe."""
    rows = []
    recipe_mean = _mean_sd([r["mean_km"] for r in runs["recipe"]])[0] if "recipe" in runs else float("nan")
    for name, results in runs.items():
        mean, mean_sd = _mean_sd([r["mean_km"] for r in results])
        median, median_sd = _mean_sd([r["median_km"] for r in results])
        rows.append(
            {
                "variant": name,
                "mean_km": mean,
                "mean_km_sd": mean_sd,
                "median_km": median,
                "median_km_sd": median_sd,
                "vs_recipe": mean / recipe_mean,
                "classes": statistics.fmean(r["classes"] for r in results),
                "seconds": statistics.fmean(r["seconds"] for r in results),
                "constant_mean_km": statistics.fmean(r["constant_mean_km"] for r in results),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table."""
    lines = [
        "| variant | test mean km | test median km | × recipe | classes | s / run |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['mean_km']:.1f} ± {r['mean_km_sd']:.1f} | {r['median_km']:.1f} ± "
            f"{r['median_km_sd']:.1f} | {r['vs_recipe']:.2f} | {r['classes']:.0f} | {r['seconds']:.1f} |"
        )
    constant = statistics.fmean(r["constant_mean_km"] for r in rows)
    lines.append(f"| best constant guess | {constant:.1f} | | {constant / rows[0]['mean_km']:.2f} | 1 | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Run the ablation and print (and optionally write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="labelled dataset root")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20, help="passes over the training split per run")
    parser.add_argument("--variants", nargs="+", default=None, help=f"subset of: {', '.join(VARIANTS)}")
    parser.add_argument("--subset", type=int, default=0, help="keep this many locations (0: all)")
    parser.add_argument("--cache-dir", default=None, help="where the features are cached (default: under --data)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these small heads)")
    parser.add_argument("--out", default=None, help="JSON file of every run")
    parser.add_argument("--markdown", default=None, help="Markdown file of the table")
    args = parser.parse_args(argv)
    names = args.variants or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    torch.set_num_threads(args.threads)
    recipe = recipe_settings()
    cache_dir = Path(args.cache_dir) if args.cache_dir else Path(args.data) / ".ablation_cache"
    table, features = load_features(args.data, recipe["image_size"], recipe["model"]["backbone"], cache_dir)
    table["feature_row"] = np.arange(len(table))
    if args.subset:
        keep = np.sort(np.random.default_rng(0).choice(len(table), size=min(args.subset, len(table)), replace=False))
        table = table.iloc[keep].reset_index(drop=True)
    most_copies = max(int(VARIANTS[n].get("augmented_copies", 0)) for n in names)
    copies = None
    if most_copies:
        every = loading.load_locations([args.data], require_labels=True).reset_index(drop=True)
        copies = load_copies(
            args.data, recipe["image_size"], recipe["model"]["backbone"], cache_dir, most_copies, every
        )
    runs: dict[str, list[dict[str, float]]] = {}
    for name in (["recipe"] if "recipe" not in names else []) + names:
        try:
            runs[name] = [
                run_variant(VARIANTS[name], recipe, table, features, s, args.epochs, copies) for s in args.seeds
            ]
        except ConfigError as exc:  # a variant the installed package cannot run yet (e.g. a missing pooling)
            print(f"{name}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        done = runs[name]
        print(f"{name}: mean {statistics.fmean(r['mean_km'] for r in done):.1f} km", file=sys.stderr)
    rows = summarise_runs(runs)
    table_md = markdown(rows)
    print(table_md)
    meta = {"data": args.data, "locations": len(table), "seeds": args.seeds, "epochs": args.epochs}
    if args.out:
        atomic_write_text(Path(args.out), json.dumps({"settings": meta, "summary": rows, "runs": runs}, indent=2))
    if args.markdown:
        atomic_write_text(Path(args.markdown), table_md + "\n")


if __name__ == "__main__":
    main()
