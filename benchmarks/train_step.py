"""CPU training-step throughput: the original recipe against the project's.

The original recipe: fp32, NCHW tensors, batch 8, one backbone call per view (four
calls per batch). The project's: the four views folded into one backbone call,
channels_last memory layout, bf16 autocast of the backbone on CPUs with native bf16, and
a larger batch. Both run the same
backbone, head, loss and optimizer on random images; only the way the step is executed
differs.

The two are timed in alternating rounds, so a change in the machine's load hits both
alike; the speed-up is the median of the per-round ratios. Ratios of images per
CPU-second of this process are reported too: on a shared machine they are the steadier
measure of the work each step needs.

    python benchmarks/train_step.py --backbones resnet18 efficientnet_lite0 --size 112 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F  # noqa: N812

from geoguess_utils import precision
from geoguess_utils.models import multiview

VIEWS = 4
CLASSES = 100


@dataclass(frozen=True)
class Recipe:
    """How a training step is executed.

    Attributes:
        name: Label in the tables.
        batch: Locations per step.
        per_view_calls: One backbone call per view (the original) instead of one call on
            the views folded into the batch.
        bf16: bf16 autocast.
        channels_last: NHWC memory layout for the convolutions.
    """

    name: str
    batch: int
    per_view_calls: bool
    bf16: bool
    channels_last: bool


ORIGINAL = Recipe("original", batch=8, per_view_calls=True, bf16=False, channels_last=False)


def project_recipe(batch: int = 32) -> Recipe:
    """The project's way: views folded, channels_last, bf16 backbone where the CPU has native bf16.

    With the backbone frozen this is what ``configs/quick_cpu.yaml`` does
    (``cpu_bf16_frozen_backbone``); with it trained, what ``--trainer.precision bf16-mixed
    --model.channels_last true`` does.
    """
    return Recipe("ours", batch=batch, per_view_calls=False, bf16=precision.cpu_has_native_bf16(), channels_last=True)


def build_step(backbone: str, size: int, recipe: Recipe, frozen: bool) -> Callable[[], None]:
    """A closure running one full training step (forward, backward, AdamW) on fixed random images."""
    torch.manual_seed(0)
    net = multiview.MultiViewNet(backbone, num_outputs=CLASSES, pretrained=False, channels_last=recipe.channels_last)
    if frozen:
        net.backbone.requires_grad_(False)
    if recipe.channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    images = torch.randn(recipe.batch, VIEWS, 3, size, size)
    view_batches = [images[:, v].contiguous() for v in range(VIEWS)]  # the original loader gave one batch per view
    target = torch.randint(0, CLASSES, (recipe.batch,))

    def step() -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if recipe.bf16 else contextlib.nullcontext()
        with autocast:  # the backbone only, as the training task does; the head stays fp32
            if recipe.per_view_calls:
                features = torch.cat([net.backbone(views) for views in view_batches], dim=1)
            else:
                features = net.features(images)
        loss = F.cross_entropy(net.head(features.float()), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _timed(step: Callable[[], None], seconds: float, min_steps: int = 2) -> tuple[int, float, float]:
    """Steps done, wall seconds and CPU seconds of running ``step`` for at least ``seconds``."""
    steps, wall, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - wall
        if elapsed >= seconds and steps >= min_steps:
            return steps, elapsed, time.process_time() - cpu


def compare(
    backbone: str, size: int, frozen: bool, ours: Recipe, seconds: float, rounds: int, original: Recipe = ORIGINAL
) -> dict[str, object]:
    """Time the original and the project's step in alternating rounds.

    Returns:
        Images/s of both (summed over rounds), the median per-round speed-up in wall
        time and in CPU time, and both recipes.
    """
    steps = {r.name: build_step(backbone, size, r, frozen) for r in (original, ours)}
    for step in steps.values():  # warm-up: allocator, oneDNN kernel selection
        step()
        step()
    totals = {name: [0, 0.0, 0.0] for name in steps}
    wall_ratios, cpu_ratios = [], []
    for _ in range(rounds):
        rate, cpu_rate = {}, {}
        for recipe in (original, ours):
            n, wall, cpu = _timed(steps[recipe.name], seconds)
            images = n * recipe.batch * VIEWS
            totals[recipe.name][0] += images
            totals[recipe.name][1] += wall
            totals[recipe.name][2] += cpu
            rate[recipe.name], cpu_rate[recipe.name] = images / wall, images / max(cpu, 1e-9)
        wall_ratios.append(rate[ours.name] / rate[original.name])
        cpu_ratios.append(cpu_rate[ours.name] / cpu_rate[original.name])
    images_per_s = {name: t[0] / t[1] for name, t in totals.items()}
    return {
        "backbone": backbone,
        "size": size,
        "frozen": frozen,
        "original_images_per_s": images_per_s[original.name],
        "ours_images_per_s": images_per_s[ours.name],
        "speedup": statistics.median(wall_ratios),
        "speedup_rounds": wall_ratios,
        "cpu_speedup": statistics.median(cpu_ratios),
        "original": asdict(original),
        "ours": asdict(ours),
    }


def run(backbones: list[str], size: int, seconds: float, rounds: int = 3, batch: int = 32) -> dict[str, object]:
    """Compare the original and the project's step for each backbone, unfrozen and frozen."""
    rows = []
    for name in backbones:
        for frozen in (False, True):
            row = compare(name, size, frozen, project_recipe(batch), seconds, rounds)
            rows.append(row)
            print(
                f"{name:>18} {'frozen' if frozen else 'unfrozen':>8}: original {row['original_images_per_s']:7.1f} "
                f"img/s, ours {row['ours_images_per_s']:7.1f} img/s, x{row['speedup']:.2f} "
                f"(CPU time x{row['cpu_speedup']:.2f})",
                flush=True,
            )
    return {
        "device": precision.describe_device(),
        "native_bf16": precision.cpu_has_native_bf16(),
        "threads": torch.get_num_threads(),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "efficientnet_lite0"])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per recipe and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args()
    result = run(args.backbones, args.size, args.seconds, args.rounds, args.batch)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
