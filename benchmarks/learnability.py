"""Is the synthetic dataset learnable? A small CNN against the predict-the-mean baseline.

Generates a synthetic dataset (2,000 locations at 64 px by default), splits it with a
seed (80/10/10), and trains a small CNN over the four views for a fixed time budget on
the CPU: one shared convolutional trunk applied to every view (views folded into the
batch), the four feature vectors concatenated in heading order, and a head that
regresses min-max scaled projected x/y. The loss is the planar distance in km, which
matches the metric. The script then compares the validation mean haversine error with
the baseline that always predicts the mean training position, computed on the same
split, and prints one JSON line::

    {"baseline_km": ..., "model_km": ..., "ratio": ..., "wall_s": ..., ...}

Usage::

    python benchmarks/learnability.py --locations 2000 --size 64 --minutes 3 --threads 2

The generator is successful when ``ratio <= 0.5``. The signal can only come from the
drawn geography (sea, landscape zones, mountains, settlements): the renderer never sees
the coordinates themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a shared or busy machine spinning
# threads slow every step down many times over. Must be set before torch starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from geoguess_utils.data import layout
from geoguess_utils.datasets.synthetic import write
from geoguess_utils.geo import distance, projection


def load_views(root: Path, table: pd.DataFrame, size: int) -> np.ndarray:
    """Read every location's four JPEGs into uint8 (N, 4, 3, S, S)."""
    out = np.empty((len(table), 4, 3, size, size), dtype=np.uint8)
    for i, name in enumerate(table["uuid"]):
        for v, heading in enumerate(layout.HEADINGS):
            with Image.open(root / layout.WRITTEN_IMAGE_DIR / name / f"{heading}.jpg") as picture:
                out[i, v] = np.asarray(picture.convert("RGB")).transpose(2, 0, 1)
    return out


def split_indices(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded 80/10/10 split of ``range(n)`` into train, validation and test indices."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(0.8 * n), int(0.1 * n)
    return order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]


class ViewNet(nn.Module):
    """Shared CNN trunk over four views, features concatenated in heading order."""

    def __init__(self, width: int = 16, views: int = 4) -> None:
        super().__init__()

        def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            )

        self.trunk = nn.Sequential(
            block(3, width, 2),
            block(width, 2 * width, 2),
            block(2 * width, 2 * width, 1),
            block(2 * width, 4 * width, 2),
            block(4 * width, 4 * width, 1),
        )
        self.views = views
        features = 4 * width * 2
        self.head = nn.Sequential(
            nn.Dropout(0.3), nn.Linear(views * features, 256), nn.ReLU(inplace=True), nn.Linear(256, 2)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Map views (B, 4, 3, H, W), float, to scaled (x, y) predictions (B, 2)."""
        b = images.shape[0]
        maps = self.trunk(images.flatten(0, 1))
        pooled = torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)
        return self.head(pooled.view(b, -1))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the JSON result line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--locations", type=int, default=2000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--width", type=int, default=16, help="channels of the first convolution")
    parser.add_argument("--pool", type=int, default=1, help="average-pool the views by this factor first")
    parser.add_argument("--data", type=Path, default=None, help="reuse or keep the dataset here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data or Path(scratch) / "synthetic"
        if not (root / layout.CSV_NAME).exists():
            write.generate_dataset(root, args.locations, size=args.size, seed=args.seed, workers=args.threads)
        gen_s = time.perf_counter() - start
        table = pd.read_csv(root / layout.CSV_NAME)
        views = load_views(root, table, args.size)

    lat, lon = table["latitude"].to_numpy(), table["longitude"].to_numpy()
    train, val, _ = split_indices(len(table), args.seed)
    x_m, y_m = projection.to_projected(lat, lon)
    scaler = projection.MinMaxScaler.fit(x_m[train], y_m[train])
    xs, ys = scaler.transform(x_m, y_m)
    span_km = torch.tensor([(scaler.x_max - scaler.x_min) / 1000.0, (scaler.y_max - scaler.y_min) / 1000.0])

    baseline_km = float(distance.haversine_km(lat[val], lon[val], lat[train].mean(), lon[train].mean()).mean())

    images = torch.from_numpy(views)
    target = torch.tensor(np.column_stack([xs, ys]), dtype=torch.float32)
    mean = images[train].float().mean(dim=(0, 1, 3, 4)).view(1, 1, 3, 1, 1) / 255.0
    std = images[train].float().std(dim=(0, 1, 3, 4)).view(1, 1, 3, 1, 1) / 255.0

    def prepare(index: np.ndarray) -> torch.Tensor:
        batch = (images[index].float() / 255.0 - mean) / std
        if args.pool > 1:
            batch = nn.functional.avg_pool2d(batch.flatten(0, 1), args.pool).unflatten(0, batch.shape[:2])
        return batch

    model = ViewNet(width=args.width)
    budget_s = args.minutes * 60.0
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    train_start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    steps, epochs = 0, 0
    steps_per_epoch = int(np.ceil(len(train) / args.batch_size))
    # One-cycle-like schedule driven by elapsed time rather than a fixed step count.
    while time.perf_counter() - train_start < budget_s:
        model.train()
        order = rng.permutation(train)
        for i in range(steps_per_epoch):
            elapsed = (time.perf_counter() - train_start) / budget_s
            if elapsed >= 1.0:
                break
            lr = args.lr * min(1.0, elapsed / 0.05) * 0.5 * (1 + np.cos(np.pi * min(elapsed, 1.0)))
            for group in optimiser.param_groups:
                group["lr"] = lr
            batch = order[i * args.batch_size : (i + 1) * args.batch_size]
            pred = model(prepare(batch))
            delta = (pred - target[batch]) * span_km
            loss = torch.sqrt((delta**2).sum(dim=1) + 1e-6).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
        epochs += 1
    train_s = time.perf_counter() - train_start

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(prepare(val[i : i + 128])) for i in range(0, len(val), 128)]).numpy()
    px, py = scaler.inverse_transform(pred[:, 0], pred[:, 1])
    plat, plon = projection.to_latlon(px, py)
    model_km = float(distance.haversine_km(lat[val], lon[val], plat, plon).mean())
    result = {
        "baseline_km": round(baseline_km, 2),
        "model_km": round(model_km, 2),
        "ratio": round(model_km / baseline_km, 3),
        "wall_s": round(time.perf_counter() - start, 1),
        "generate_s": round(gen_s, 1),
        "train_s": round(train_s, 1),
        "epochs": epochs,
        "steps": steps,
        "locations": len(table),
        "size": args.size,
        "val_locations": len(val),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
