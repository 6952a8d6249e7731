r"""Error by number of views: the quick model trained with and without view dropout, tested on 4, 3, 2 and 1 view(s).

    python benchmarks/views.py --data data/synthetic_settlements --seeds 3 4 5 --out benchmarks/views.json

Every run trains the quick config's model (``configs/quick_cpu.yaml`` as changes to the recipe,
the ablation's ``best``) from the cached backbone features (``benchmarks/ablation.py``), once
as configured and once with ``view_dropout``/``heading_dropout``, for each seed. Each test
location is then predicted from every subset of its views of each size (4 subsets of one
view, 6 of two, 4 of three, 1 of four; absent views masked, headings known) and the errors
of the subsets of one size are averaged. Two more rows for one view: the heading unknown,
and "four copies", the old trick of copying one photo into all four slots. Reported: test
mean and median km, mean over the seeds, and the sd of the mean.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ablation

from geoguess_utils.cells.context import GeoContext
from geoguess_utils.data.splits import make_split
from geoguess_utils.evaluation import summarise_km
from geoguess_utils.geo import distance
from geoguess_utils.io import atomic_write_text

DROPOUT = ablation.VIEW_DROPOUT
"""The view dropout of the ``view dropout`` model: that of ``configs/quick_cpu.yaml``."""


def subset_masks(views: int = 4) -> dict[int, list[tuple[int, ...]]]:
    """Every non-empty subset of the view slots, by size: ``{4: [(0, 1, 2, 3)], ..., 1: [(0,), (1,), ...]}``."""
    return {k: list(itertools.combinations(range(views), k)) for k in range(views, 0, -1)}


def test_errors(task: Any, batch: dict[str, Any], latlon: np.ndarray) -> dict[str, dict[str, float]]:
    """Test mean and median km of ``task`` per number of views, and for one view the two other ways.

    Args:
        task: A trained task in eval mode.
        batch: The test split as one batch of cached features (``view_features`` (N, 4, F)).
        latlon: True ``(lat, lon)`` degrees, (N, 2).

    Returns:
        Row name -> ``{"mean_km", "median_km"}`` averaged over the subsets of that size.
    """
    features = batch["view_features"]
    n, views = features.shape[:2]

    def km(**extra: Any) -> dict[str, float]:
        with torch.no_grad():
            points = task.predict_step({**batch, **extra}, 0)["latlon"].numpy()
        return summarise_km(distance.haversine_km(latlon[:, 0], latlon[:, 1], points[:, 0], points[:, 1]))

    rows: dict[str, dict[str, float]] = {}
    concat = not task.takes_any_views  # takes four views with their headings, nothing else
    for size, subsets in subset_masks(views).items():
        if concat and size < views:
            continue
        scores = []
        for subset in subsets:
            mask = torch.zeros(n, views, dtype=torch.bool)
            mask[:, list(subset)] = True
            scores.append(km(view_mask=mask))
        rows[f"{size} view{'s' if size > 1 else ''}"] = _average(scores)
    unknown, copies = [], []
    for view in range(views):
        mask = torch.zeros(n, views, dtype=torch.bool)
        mask[:, view] = True
        if not concat:
            unknown.append(km(view_mask=mask, heading_known=torch.zeros(n, views, dtype=torch.bool)))
        copied = features[:, view : view + 1].expand(-1, views, -1).contiguous()
        copies.append(km(view_features=copied))
    if unknown:
        rows["1 view, heading unknown"] = _average(unknown)
    rows["1 view, four copies"] = _average(copies)
    return rows


def _average(scores: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.fmean(s[key] for s in scores) for key in ("mean_km", "median_km")}


MODELS = ("no dropout", "view dropout", "recipe (concat)")
"""The models compared: the quick config's without and with view dropout, and the 2022 recipe's."""


def run_seed(recipe: dict[str, Any], table: Any, features: np.ndarray, seed: int, epochs: int) -> dict[str, Any]:
    """The models of :data:`MODELS` on one seed's split: model name -> rows (see :func:`test_errors`)."""
    quick = ablation.BEST  # the quick config without its view dropout
    split = make_split(table["uuid"].tolist(), recipe["fractions"], seed)
    table = table.merge(split, on="uuid")
    out: dict[str, Any] = {}
    for name, variant, extra in zip(MODELS, (quick, quick, {}), ({}, DROPOUT, {}), strict=True):
        train = table[table["split"] == "train"].reset_index(drop=True)
        test = table[table["split"] == "test"].reset_index(drop=True)
        scheme = variant.get("scheme", recipe["cells"].get("scheme", "square"))
        params = variant.get("scheme_params", {}) if "scheme" in variant else recipe["cells"].get("params", {})
        context = GeoContext.fit(
            train["latitude"].to_numpy(),
            train["longitude"].to_numpy(),
            spacing_deg=float(recipe["cells"].get("spacing_deg", 0.3)),
            scheme=scheme,
            scheme_params=params,
        )
        train["class_index"] = context.assign(train["latitude"], train["longitude"])
        test["class_index"] = context.assign(test["latitude"], test["longitude"])
        batch = ablation._batch(test, features, np.arange(len(test)), context)
        latlon = test[["latitude", "longitude"]].to_numpy(dtype=np.float64)
        arguments = {**recipe["model"], **variant.get("model", {}), **extra}
        start = time.perf_counter()
        task = ablation._train_head(
            variant, arguments, context, train, features, seed, epochs, recipe["batch_size"], recipe["image_size"]
        )
        trained = time.perf_counter()
        out[name] = test_errors(task, batch, latlon)
        seconds = f"trained in {trained - start:.0f} s, tested in {time.perf_counter() - trained:.0f} s"
        print(f"seed {seed}, {name}: {seconds}", file=sys.stderr, flush=True)
        out["test_locations"] = len(test)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--cache-dir", type=Path, help="where the features are cached (default: under --data)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these small heads)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = ablation.recipe_settings()
    backbone = recipe["model"]["backbone"]
    cache_dir = args.cache_dir or Path(args.data) / ".ablation_cache"  # the ablation's features, reused
    table, features = ablation.load_features(args.data, recipe["image_size"], backbone, cache_dir)
    table = table.assign(feature_row=np.arange(len(table)))
    runs = {seed: run_seed(recipe, table, features, seed, args.epochs) for seed in args.seeds}
    header = " | ".join(f"{model}: mean km | median km" for model in MODELS)
    lines = [f"| views | {header} |", "|---|" + "---|" * 2 * len(MODELS)]
    summary: dict[str, dict[str, list[float]]] = {}
    first = runs[args.seeds[0]]
    for row in first["no dropout"]:
        cells = []
        for model in MODELS:
            if row not in first[model]:
                cells += ["—", "—"]
                continue
            means = [runs[s][model][row]["mean_km"] for s in args.seeds]
            medians = [runs[s][model][row]["median_km"] for s in args.seeds]
            sd = statistics.stdev(means) if len(means) > 1 else 0.0
            summary.setdefault(model, {})[row] = [statistics.fmean(means), sd, statistics.fmean(medians)]
            cells += [f"{statistics.fmean(means):.1f} ± {sd:.1f}", f"{statistics.fmean(medians):.1f}"]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.out is not None:
        settings = {"data": args.data, "seeds": args.seeds, "epochs": args.epochs, "dropout": DROPOUT}
        settings["test_locations"] = [runs[s]["test_locations"] for s in args.seeds]
        document = {"settings": settings, "runs": {str(s): r for s, r in runs.items()}, "summary": summary}
        atomic_write_text(args.out, json.dumps(document, indent=1) + "\n")


if __name__ == "__main__":
    main()
