"""The embedding cache: one frozen epoch from cache vs recomputed, the cache build rate, and two whole fits.

Measured in one run on the same split and machine, so the ratios hold even when other work
shares the machine (the absolute seconds do not):

* one frozen-backbone training epoch as the quick config ran it before the cache (decode the
  JPEGs, run the frozen backbone, train the head) against one epoch of the same head from
  the cache (features read from a memory map);
* the cache build: views per second through ``Trainer.predict``;
* optionally (``--fits``) the whole ``geoguess fit`` of ``configs/quick_cpu_images.yaml`` (no
  cache, 4 frozen + 2 fine-tuning epochs) and of ``configs/quick_cpu.yaml`` (cached frozen
  phase with an MLP head, then a short fine-tune): seconds, test mean km, and the
  predict-the-mean baseline of the same test split.

    python benchmarks/embedding_cache.py --data data/synthetic --fits --out benchmarks/embedding_cache.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from geoguess_utils import embeddings
from geoguess_utils.data.datamodule import GeoDataModule
from geoguess_utils.data.geodataset import CachedFeatureDataset
from geoguess_utils.data.settings import CacheSettings, CellSettings
from geoguess_utils.evaluation import summarise_km
from geoguess_utils.geo import distance, projection
from geoguess_utils.io import atomic_write_text
from geoguess_utils.tasks.classification import ClassificationTask

REPO = Path(__file__).resolve().parents[1]


def _head_epoch(task: ClassificationTask, loader, optimizer) -> float:
    """Train the head for one pass over ``loader``; return the seconds it took."""
    task.train()
    task.net.backbone.eval()
    start = time.perf_counter()
    for batch in loader:
        optimizer.zero_grad()
        loss = task.loss(task._training_outputs(batch), batch)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def frozen_epochs(data: str, image_size: int, batch_size: int, cache_dir: Path) -> dict[str, float]:
    """Seconds of one frozen epoch recomputed and from the cache, and the cache build rate."""
    module = GeoDataModule(
        roots=[data],
        image_size=image_size,
        batch_size=batch_size,
        cells=CellSettings(spacing_deg=0.3),
        cache=CacheSettings(dir=str(cache_dir), images="memory"),
    )
    module.setup("fit")
    task = ClassificationTask(
        pretrained=True, head_hidden=512, dropout=0.3, label_smoothing_tau_km=25.0, cpu_bf16_frozen_backbone=True
    )
    task.configure_context(module.context, image_size)
    for p in task.net.backbone.parameters():
        p.requires_grad_(False)
    head = [p for p in task.net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(head, lr=1e-3)
    train = module.dataset("train")
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, num_workers=0)
    recomputed_s = _head_epoch(task, loader, optimizer)

    plain = module._dataset(module._tables["train"], "train", module._cache_root(module.roots), train=False)
    start = time.perf_counter()
    cache = embeddings.build_embeddings(
        embeddings.Embedder.of_task(task), plain, cache_dir, "bench_train", batch_size=64
    )
    build_s = time.perf_counter() - start
    cached = CachedFeatureDataset(train, cache)
    cached_loader = torch.utils.data.DataLoader(cached, batch_size=batch_size, shuffle=True, num_workers=0)
    _head_epoch(task, cached_loader, optimizer)  # first pass maps the file
    cached_s = _head_epoch(task, cached_loader, optimizer)
    views = len(train) * 4
    return {
        "locations": len(train),
        "recomputed_epoch_s": recomputed_s,
        "cached_epoch_s": cached_s,
        "epoch_ratio": recomputed_s / cached_s,
        "cache_build_s": build_s,
        "cache_views_per_s": views / build_s,
    }


def _fit(config: str, name: str, data: str, work: Path) -> dict[str, float]:
    logger = f"[{{class_path: pytorch_lightning.loggers.CSVLogger, init_args: {{save_dir: {work}, name: {name}}}}}]"
    argv = [sys.executable, "-m", "geoguess_utils.cli", "fit", "--config", config, "--data.roots", f"[{data}]"]
    argv += ["--trainer.logger", logger, "--trainer.enable_progress_bar", "false"]
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=work, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{config} failed:\n{done.stderr[-3000:]}")
    run = max((work / name).glob("version_*"), key=lambda p: p.stat().st_mtime)
    metrics = pd.read_csv(run / "metrics.csv")
    split = pd.read_csv(run / "split.csv")
    return {"seconds": seconds, "test_mean_km": float(metrics["test/mean_km"].dropna().iloc[-1]), "split": split}


def mean_baseline_km(data: str, split: pd.DataFrame) -> float:
    """Test mean km of predicting the training split's mean position (in the projected plane)."""
    table = pd.read_csv(Path(data) / "data.csv").merge(split, on="uuid")
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    x, y = projection.to_projected(train["latitude"], train["longitude"])
    lat, lon = projection.to_latlon(np.array([x.mean()]), np.array([y.mean()]))
    km = distance.haversine_km(test["latitude"], test["longitude"], lat[0], lon[0])
    return float(summarise_km(km)["mean_km"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--work", type=Path, default=Path("/tmp/geoguess_embedding_bench"))
    parser.add_argument("--fits", action="store_true", help="also time the two whole quick fits")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = str(Path(args.data).resolve())
    result: dict[str, object] = {"load_average": os.getloadavg()[0], "cpu_count": os.cpu_count()}
    result["frozen_epoch"] = frozen_epochs(data, args.image_size, args.batch_size, args.work / "cache")
    print(json.dumps(result["frozen_epoch"], indent=1))
    if args.fits:
        fits = {}
        for name, config in (("images", "configs/quick_cpu_images.yaml"), ("cached", "configs/quick_cpu.yaml")):
            fit = _fit(str(REPO / config), f"fit_{name}", data, args.work)
            fit["mean_baseline_km"] = mean_baseline_km(data, fit.pop("split"))
            fit["ratio_to_mean"] = fit["test_mean_km"] / fit["mean_baseline_km"]
            fits[name] = fit
            print(name, json.dumps(fit))
        fits["time_ratio_cached_to_images"] = fits["cached"]["seconds"] / fits["images"]["seconds"]
        result["fits"] = fits
    result["load_average_after"] = os.getloadavg()[0]
    if args.out:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
