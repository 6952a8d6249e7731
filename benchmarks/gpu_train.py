"""GPU training throughput: the original setup against the project's recipe, same card, one run.

(a) original: fp32, NCHW, batch 8, one backbone call per view, images copied from the
    host every step;
(b) recipe: bf16 autocast, channels_last, ``torch.compile`` on the backbone only,
    large batches, the image cache resident on the GPU as uint8 and normalised there;
(c) optionally the recipe without ``torch.compile`` (eager), to show what compiling adds.

All train the same multi-view network (backbone + linear head, cross-entropy, Adam/AdamW)
on random images; the numbers are throughput, not accuracy. Reports images/s,
locations/s (samples of four views), the share of the card's peak dense bf16 FLOP/s and
the peak GPU memory of each setup. The JSON file is rewritten after every measurement,
so a run cut short still leaves what it measured.

    python benchmarks/gpu_train.py --json gpu.json              # on a GPU, a few minutes
    python benchmarks/gpu_train.py --dry-run                    # on a CPU, seconds: checks the script
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from torch.utils.flop_counter import FlopCounterMode

from geoguess_utils import precision
from geoguess_utils.io import atomic_write_text
from geoguess_utils.models import multiview

VIEWS = 4
CLASSES = 118
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets, FLOP/s.
PEAK_BF16 = {"H200": 989e12, "H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100": 756e12}
PEAK_BF16.update({"A100": 312e12, "L40S": 362e12, "A10": 125e12})


def peak_flops(device_name: str) -> float | None:
    """Peak dense bf16 FLOP/s of a known card, matched by name; None when unknown."""
    for key in sorted(PEAK_BF16, key=len, reverse=True):
        if key in device_name:
            return PEAK_BF16[key]
    return None


def train_flops_per_image(backbone: str, size: int) -> float:
    """FLOPs of one training step per image: three times the forward FLOPs counted on the CPU.

    The backward pass costs about twice the forward one (gradients of the inputs and of
    the weights). Counting it directly is not used because the counter overstates the
    backward of grouped convolutions (ResNeXt) several times over.
    """
    net = multiview.MultiViewNet(backbone, num_outputs=CLASSES, pretrained=False)
    images = torch.randn(1, VIEWS, 3, size, size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(images)
    return 3 * counter.get_total_flops() / VIEWS


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(step: Callable[[], None], steps: int, warmup: int, device: torch.device) -> dict[str, float]:
    """Warm-up seconds (compilation, autotuning) and timed seconds of ``steps`` steps."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"warmup_s": warm, "seconds": seconds, "peak_gpu_mem_gib": peak}


def original_setup(backbone: str, size: int, steps: int, warmup: int, device: torch.device) -> dict[str, object]:
    """fp32, NCHW, batch 8, per-view backbone calls, host-to-device copy each step."""
    batch = 8
    net = multiview.MultiViewNet(backbone, num_outputs=CLASSES, pretrained=False).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    host_images = torch.randn(batch, VIEWS, 3, size, size)
    target = torch.randint(0, CLASSES, (batch,), device=device)

    def step() -> None:
        images = host_images.to(device)
        feats = torch.cat([net.backbone(images[:, v]) for v in range(VIEWS)], dim=1)
        loss = F.cross_entropy(net.head(feats), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    timing = _timed(step, steps, warmup, device)
    return {"batch": batch, "steps": steps, "compiled": False, **timing}


def recipe(
    backbone: str, size: int, batch: int, steps: int, warmup: int, device: torch.device, compile_backbone: bool
) -> dict[str, object]:
    """bf16 autocast, channels_last, compiled backbone, large batch, uint8 cache on the device."""
    net = multiview.MultiViewNet(backbone, num_outputs=CLASSES, pretrained=False, channels_last=True)
    net = net.to(device, memory_format=torch.channels_last)
    if compile_backbone:
        torch._dynamo.reset()  # no shapes remembered from another size: keep the kernels static
        net.backbone.compile(dynamic=False)  # in place: parameter names (and checkpoints) stay as they are
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=device.type == "cuda")
    cache = torch.randint(0, 256, (4 * batch, VIEWS, size, size, 3), dtype=torch.uint8, device=device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 1, 3, 1, 1) * 255
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 1, 3, 1, 1) * 255
    target = torch.randint(0, CLASSES, (batch,), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    position = [0]

    def step() -> None:
        start = position[0] % (cache.shape[0] - batch + 1)
        position[0] += batch
        images = (cache[start : start + batch].permute(0, 1, 4, 2, 3).float() - mean) / std
        with autocast:
            loss = F.cross_entropy(net(images).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    timing = _timed(step, steps, warmup, device)
    return {"batch": batch, "steps": steps, "compiled": compile_backbone, **timing}


def _finish_row(row: dict[str, object], label: str, size: int, backbone: str, flops: float, peak: float | None) -> None:
    images_per_s = row["steps"] * row["batch"] * VIEWS / row["seconds"]
    row.update(
        setup=label,
        size=size,
        backbone=backbone,
        images_per_s=images_per_s,
        locations_per_s=images_per_s / VIEWS,
        train_gflop_per_image=flops / 1e9,
        achieved_tflops=images_per_s * flops / 1e12,
        share_of_peak_bf16=(images_per_s * flops / peak) if peak else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnext101_32x8d")
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 64], help="recipe batch per size (locations)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed-steps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="run the recipe eagerly only")
    parser.add_argument("--eager-too", action="store_true", help="also time the recipe without torch.compile")
    parser.add_argument("--dry-run", action="store_true", help="tiny CPU run that only checks the script works")
    parser.add_argument("--json", type=Path, default=None, help="results file, rewritten after every measurement")
    args = parser.parse_args()
    if len(args.batch) not in (1, len(args.sizes)):
        parser.error("give one --batch for all sizes or one per size")
    if args.dry_run:
        args.backbone, args.sizes, args.batch = "resnet18", [32], [4]
        args.steps, args.seed_steps, args.warmup, args.no_compile = 2, 2, 1, True
    batches = args.batch * len(args.sizes) if len(args.batch) == 1 else args.batch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else precision.describe_device()
    peak = peak_flops(name) if device.type == "cuda" else None
    result: dict[str, object] = {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "peak_bf16_flops": peak,
        "dry_run": args.dry_run,
        "rows": [],
    }
    rows: list[dict[str, object]] = result["rows"]  # type: ignore[assignment]

    def save() -> None:
        if args.json:
            atomic_write_text(args.json, json.dumps(result, indent=2))

    for size, batch in zip(args.sizes, batches, strict=True):
        flops = train_flops_per_image(args.backbone, size)
        seed = original_setup(args.backbone, size, args.seed_steps, args.warmup, device)
        _finish_row(seed, "original", size, args.backbone, flops, peak)
        rows.append(seed)
        save()
        variants = [False] if args.no_compile else ([True, False] if args.eager_too else [True])
        for compiled in variants:
            try:
                ours = recipe(args.backbone, size, batch, args.steps, args.warmup, device, compiled)
            except Exception as exc:  # a compiler failure must not lose the other numbers
                rows.append({"setup": "recipe", "size": size, "compiled": compiled, "error": repr(exc)[:500]})
                save()
                print(f"{args.backbone} @ {size}px recipe (compiled={compiled}) failed: {exc!r}", flush=True)
                continue
            _finish_row(
                ours, "recipe" if compiled or args.no_compile else "recipe_eager", size, args.backbone, flops, peak
            )
            ours["speedup_vs_original"] = ours["images_per_s"] / seed["images_per_s"]
            rows.append(ours)
            save()
            print(
                f"{args.backbone} @ {size}px: original {seed['images_per_s']:.0f} img/s, "
                f"{ours['setup']} {ours['images_per_s']:.0f} img/s (batch {batch}, warm-up {ours['warmup_s']:.0f} s), "
                f"x{ours['speedup_vs_original']:.1f}",
                flush=True,
            )
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(json.dumps(result))
    save()


if __name__ == "__main__":
    main()
