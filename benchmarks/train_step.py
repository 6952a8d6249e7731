"""CPU training-step throughput: the original recipe against the project's.

The original recipe: fp32, NCHW tensors, batch 8, one backbone call per view (four
calls per batch). The project's: the four views folded into one backbone call,
channels_last memory layout, bf16 autocast when the CPU has native bf16, and a larger
batch. Both run the same backbone, head, loss and optimizer on random images; only
the way the step is executed differs.

    python benchmarks/train_step.py --backbones resnet18 efficientnet_lite0 --size 112 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch
import torch.nn.functional as F  # noqa: N812

from geoguess_utils import accel, models

VIEWS = 4


def _step_fn(net: models.MultiViewNet, per_view_calls: bool, bf16: bool, channels_last: bool):
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)

    def step(images: torch.Tensor, target: torch.Tensor) -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            if per_view_calls:
                feats = torch.cat([net.backbone(images[:, v]) for v in range(VIEWS)], dim=1)
                out = net.head(feats)
            else:
                flat = images.flatten(0, 1)
                if channels_last:
                    flat = flat.contiguous(memory_format=torch.channels_last)
                out = net.head(net.backbone(flat).reshape(images.shape[0], -1))
            loss = F.cross_entropy(out.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(
    backbone: str,
    size: int,
    batch: int,
    per_view_calls: bool,
    bf16: bool,
    channels_last: bool,
    frozen: bool,
    seconds: float,
    classes: int = 100,
) -> dict[str, float | str | bool | int]:
    """Images per second of full training steps (forward, backward, optimizer)."""
    torch.manual_seed(0)
    net = models.MultiViewNet(backbone, num_outputs=classes, pretrained=False)
    if frozen:
        net.backbone.requires_grad_(False)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.train()
    step = _step_fn(net, per_view_calls, bf16, channels_last)
    images = torch.randn(batch, VIEWS, 3, size, size)
    target = torch.randint(0, classes, (batch,))
    for _ in range(2):  # warm-up: allocator, oneDNN kernel selection
        step(images, target)
    steps, start = 0, time.perf_counter()
    while True:
        step(images, target)
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and steps >= 3:
            break
    return {
        "backbone": backbone,
        "size": size,
        "batch": batch,
        "per_view_calls": per_view_calls,
        "bf16": bf16,
        "channels_last": channels_last,
        "frozen": frozen,
        "steps": steps,
        "images_per_s": steps * batch * VIEWS / elapsed,
        "locations_per_s": steps * batch / elapsed,
    }


def run(backbones: list[str], size: int, seconds: float, batch: int) -> dict[str, object]:
    """Measure the original and the project's step for each backbone, frozen and not."""
    bf16 = accel.cpu_has_native_bf16()
    rows = []
    for name in backbones:
        for frozen in (False, True):
            seed = measure(name, size, 8, True, False, False, frozen, seconds)
            ours = measure(name, size, batch, False, bf16, True, frozen, seconds)
            ours["speedup_vs_seed"] = ours["images_per_s"] / seed["images_per_s"]
            rows += [seed, ours]
            print(
                f"{name:>18} {'frozen' if frozen else 'unfrozen':>8}: seed {seed['images_per_s']:7.1f} img/s, "
                f"ours {ours['images_per_s']:7.1f} img/s, x{ours['speedup_vs_seed']:.2f}",
                flush=True,
            )
    return {"device": accel.describe_device(), "native_bf16": bf16, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["resnet18", "efficientnet_lite0"])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per configuration")
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args()
    result = run(args.backbones, args.size, args.seconds, args.batch)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
