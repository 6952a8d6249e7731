"""Turn the suite's results (a JSON-ready dict) into the Markdown of ``BENCHMARKS.md``.

Every table is built from the numbers in the results; nothing here measures anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def fmt(value: object, digits: int = 3) -> str:
    """Format a cell: numbers to ``digits`` significant figures (thousands separated), None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        if abs(value) >= 10 ** (digits - 1):
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table; numeric cells are formatted with :func:`fmt`.

    Args:
        headers: Column titles.
        rows: One sequence of cells per row, each as long as ``headers``.

    Returns:
        The table, one line per row, ending with a newline.

    Raises:
        ValueError: When a row has the wrong number of cells.
    """
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)!r} has {len(row)} cells, expected {len(headers)}")
        cells = [fmt(cell).replace("|", "\\|") for cell in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Target:
    """A performance target checked against a measured value.

    Attributes:
        name: What is compared, in words.
        value: The measured value (``None`` when it was not measured).
        threshold: The bound the value must meet.
        higher_is_better: ``value >= threshold`` passes when true, ``value < threshold`` otherwise.
        unit: Unit of value and threshold, for display.
    """

    name: str
    value: float | None
    threshold: float
    higher_is_better: bool = True
    unit: str = "x"

    @property
    def status(self) -> str:
        """``"PASS"``, ``"FAIL"`` or ``"NOT MEASURED"``."""
        if self.value is None:
            return "NOT MEASURED"
        ok = self.value >= self.threshold if self.higher_is_better else self.value < self.threshold
        return "PASS" if ok else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON results, with the status."""
        return {**asdict(self), "status": self.status}

    def row(self) -> list[object]:
        """Cells of the targets table."""
        bound = (">= " if self.higher_is_better else "< ") + f"{fmt(self.threshold)} {self.unit}".strip()
        shown = None if self.value is None else f"{fmt(self.value)} {self.unit}".strip()
        return [self.name, bound, shown, f"**{self.status}**"]


TARGET_HEADERS = ("Target", "Bound", "Measured", "Result")


# ----------------------------------------------------------------------------- targets

CACHE_VS_FULL = 20.0
DRAFT_VS_FULL_112 = 2.5
TRAIN_STEP_SPEEDUP = 2.0
DATA_WAIT_SHARE = 0.05
GPU_112_IMAGES_PER_S = 3000.0
GPU_224_IMAGES_PER_S = 900.0
GPU_SPEEDUP = 5.0


def targets(results: dict[str, Any]) -> list[Target]:
    """Every target of the suite, checked against ``results`` (missing sections: not measured)."""
    found: list[Target] = []
    decode = {row["size"]: row for row in ((results.get("data") or {}).get("decode") or [])}
    for size in (224, 112, 56):
        row = decode.get(size)
        found.append(Target(f"uint8 cache vs full decode, {size} px", row and row["cache_vs_full"], CACHE_VS_FULL))
    row = decode.get(112)
    found.append(Target("draft vs full decode, 112 px", row and row["draft_vs_full"], DRAFT_VS_FULL_112))
    steps = (results.get("training_step") or {}).get("rows") or []
    if steps:
        for row in steps:
            state = "frozen" if row["frozen"] else "unfrozen"
            found.append(
                Target(
                    f"CPU training step, ours vs original: {row['backbone']} {state}, {row['size']} px",
                    row["speedup"],
                    TRAIN_STEP_SPEEDUP,
                )
            )
    else:
        found.append(Target("CPU training step, ours vs original", None, TRAIN_STEP_SPEEDUP))
    wait = results.get("data_wait")
    share = wait["summary"]["all"]["wait_share"] if wait else None
    found.append(
        Target(
            "data wait / step time, quick config (every batch)",
            None if share is None else 100 * share,
            100 * DATA_WAIT_SHARE,
            higher_is_better=False,
            unit="%",
        )
    )
    found += gpu_targets(results.get("gpu"))
    return found


def gpu_targets(gpu: dict[str, Any] | None) -> list[Target]:
    """The GPU recipe's targets (set for one H100) from the recorded ``gpu_train.py`` rows."""
    rows = (gpu or {}).get("rows") or []
    recipe = {r["size"]: r for r in rows if r.get("setup") == "recipe" and "images_per_s" in r}
    card = (gpu or {}).get("device", "GPU")
    found = []
    for size, bound in ((112, GPU_112_IMAGES_PER_S), (224, GPU_224_IMAGES_PER_S)):
        row = recipe.get(size)
        found.append(
            Target(f"GPU recipe images/s, {size} px ({card})", row and row["images_per_s"], bound, unit="img/s")
        )
    for size in (112, 224):
        row = recipe.get(size)
        found.append(
            Target(f"GPU recipe vs original setup, {size} px ({card})", row and row["speedup_vs_original"], GPU_SPEEDUP)
        )
    return found


# ----------------------------------------------------------------------------- Markdown

GPU_COMMAND = "python benchmarks/gpu_train.py --sizes 112 224 --batch 256 64 --eager-too --json gpu.json"


def _mib(n: float | None) -> float | None:
    return None if n is None else n / 2**20


def _loads(results: dict[str, Any], name: str) -> str:
    section = results["sections"].get(name) or {}
    before, after = section.get("load_before") or [], section.get("load_after") or []
    if not before:
        return ""
    after_text, took = fmt(after[0] if after else None), fmt(section.get("wall_s"))
    return f"Load average (1 min) {fmt(before[0])} before, {after_text} after; section took {took} s."


def _section_error(results: dict[str, Any], name: str) -> str | None:
    section = results["sections"].get(name)
    if section is None:
        return "Not run in this run of the suite."
    if section.get("error"):
        return f"**Failed:** `{section['error']}`"
    return None


def _data_md(results: dict[str, Any]) -> list[str]:
    out = ["## Data loading", ""]
    problem = _section_error(results, "data")
    if problem:
        return [*out, problem, ""]
    d = results["data"]
    ds = d["dataset"]
    out += [
        f"Generated dataset: {ds['locations']} locations, {ds['jpegs']} JPEGs of "
        f"{ds['source_px']}x{ds['source_px']} px, "
        f"mean {fmt(ds['mean_jpeg_bytes'] / 1000)} KB each (generated in {fmt(ds['generation_s'])} s). "
        "One view per image; files in the page cache. Rates are per image, in this one process (one core busy).",
        "",
        markdown_table(
            (
                "Size",
                "Full decode img/s",
                "Draft decode img/s",
                "uint8 cache img/s",
                "Draft / full",
                "Cache / full",
                "Cache build s",
                "Cache MiB",
            ),
            [
                (
                    f"{r['size']} px",
                    r["full_images_per_s"],
                    r["draft_images_per_s"],
                    r["cache_images_per_s"],
                    r["draft_vs_full"],
                    r["cache_vs_full"],
                    r["cache_build_s"],
                    _mib(r["cache_bytes"]),
                )
                for r in d["decode"]
            ],
        ),
    ]
    loader = d["loader"]
    workers = sorted({r["workers"] for r in loader})
    sources = list(dict.fromkeys(r["source"] for r in loader))
    by_key = {(r["source"], r["workers"]): r for r in loader}
    size = loader[0]["size"] if loader else None
    out += [
        f"DataLoader throughput at {size} px, batch {loader[0]['batch_size'] if loader else '-'}, locations/s "
        "(4 images each), persistent workers, after one warm-up epoch:",
        "",
        markdown_table(
            ("Source", *[f"{w} workers" for w in workers]),
            [(s, *[by_key[(s, w)]["locations_per_s"] for w in workers]) for s in sources],
        ),
        _loads(results, "data"),
        "",
    ]
    return out


def _recipe_text(recipe: dict[str, Any]) -> str:
    parts = [f"batch {recipe['batch']}", "4 calls/step" if recipe["per_view_calls"] else "views folded"]
    parts.append("bf16" if recipe["bf16"] else "fp32")
    parts.append("channels_last" if recipe["channels_last"] else "NCHW")
    return ", ".join(parts)


def _training_md(results: dict[str, Any]) -> list[str]:
    out = ["## CPU training step", ""]
    problem = _section_error(results, "training_step")
    if problem:
        return [*out, problem, ""]
    t = results["training_step"]
    rows = t["rows"]
    out += [
        f"Full training steps (forward, backward, AdamW) on random images, {t['threads']} torch threads, "
        f"native bf16: {fmt(t['native_bf16'])}. Original: {_recipe_text(rows[0]['original'])}. "
        "The two are timed in alternating rounds; the speed-up is the median of the per-round ratios "
        "(wall clock), and the same in images per CPU-second of the process.",
        "",
        markdown_table(
            (
                "Backbone",
                "Size",
                "Backbone weights",
                "Original img/s",
                "Ours img/s",
                "Ours",
                "Speed-up",
                "Speed-up (CPU time)",
            ),
            [
                (
                    r["backbone"],
                    f"{r['size']} px",
                    "frozen" if r["frozen"] else "trained",
                    r["original_images_per_s"],
                    r["ours_images_per_s"],
                    _recipe_text(r["ours"]),
                    r["speedup"],
                    r["cpu_speedup"],
                )
                for r in rows
            ],
        ),
        _loads(results, "training_step"),
        "",
    ]
    return out


def _data_wait_md(results: dict[str, Any]) -> list[str]:
    out = ["## Data wait in the quick CPU config", ""]
    problem = _section_error(results, "data_wait")
    if problem:
        return [*out, problem, ""]
    w = results["data_wait"]
    s = w["summary"]
    labels = (
        ("all", "every batch"),
        ("steady", "first batch of each epoch left out"),
        ("frozen", "backbone frozen"),
        ("unfrozen", "backbone trained"),
    )
    out += [
        f"`geoguess fit --config configs/quick_cpu.yaml` for {len({r['epoch'] for r in w['records']})} epochs "
        f"(the first with the backbone frozen) on {w['dataset']['locations']} generated locations "
        f"({w['dataset']['source_px']} px JPEGs), with a callback timing the gap before each training batch "
        "(the DataLoader fetch plus the loop's own bookkeeping: an upper bound of the data wait) and the step itself. "
        f"Whole run: {fmt(w['wall_s'])} s.",
        "",
        markdown_table(
            ("Batches", "Count", "Mean step s", "Wait s", "Step s", "Wait / step", "Longest wait s"),
            [
                (
                    label,
                    s[key]["batches"],
                    s[key]["mean_step_s"],
                    s[key]["wait_s"],
                    s[key]["step_s"],
                    None if s[key]["wait_share"] is None else f"{100 * s[key]['wait_share']:.2f} %",
                    s[key]["max_wait_s"],
                )
                for key, label in labels
            ],
        ),
        f"Command: `{w['command']}`",
        "",
        _loads(results, "data_wait"),
        "",
    ]
    return out


def _inference_md(results: dict[str, Any]) -> list[str]:
    out = ["## Inference (`geoguess predict`)", ""]
    problem = _section_error(results, "inference")
    if problem:
        return [*out, problem, ""]
    inf = results["inference"]
    ds = inf["dataset"]
    out += [
        f"The whole command as a separate process (start-up, checkpoint, validation, decoding, model, CSV) on "
        f"{ds['locations']} generated locations ({ds['source_px']} px JPEGs), with the checkpoint of the quick "
        "training above; peak memory is the process's maximum resident set size. The first run also builds the "
        "dataset's enriched-table cache.",
        "",
        markdown_table(
            ("Run", "Locations", "Batch", "Wall s", "Locations/s", "CPU s (user+sys)", "Peak RSS MiB"),
            [
                (
                    r["label"],
                    r["locations"],
                    r["batch_size"],
                    r["wall_s"],
                    r["locations_per_s"],
                    r["user_s"] + r["system_s"],
                    r["peak_rss_mib"],
                )
                for r in inf["runs"]
            ],
        ),
        f"Command: `{inf['runs'][0]['command']}`" if inf["runs"] else "",
        "",
        _loads(results, "inference"),
        "",
    ]
    return out


def _scale_md(results: dict[str, Any]) -> list[str]:
    out = ["## Scale: the real training set's size", ""]
    problem = _section_error(results, "scale")
    if problem:
        return [*out, problem + " Run the suite with `--scale`.", ""]
    s = results["scale"]
    rows = [
        ("generate (`geoguess make-sample`)", s["generation_s"], _mib(s["dataset_bytes"])),
        ("validate, headers (`geoguess validate`)", s["validate_headers_s"], None),
        ("validate, every image decoded (`--deep`)", s["validate_deep_s"], None),
    ]
    rows += [(f"build the uint8 cache at {c['size']} px", c["build_s"], _mib(c["bytes"])) for c in s["caches"]]
    out += [
        f"{s['locations']:,} generated locations ({4 * s['locations']:,} JPEGs of {s['source_px']} px).",
        "",
        markdown_table(("Step", "Seconds", "Disk MiB"), rows),
        _loads(results, "scale"),
        "",
    ]
    return out


def _gpu_md(results: dict[str, Any]) -> list[str]:
    out = ["## GPU recipe (ResNeXt-101 32x8d)", ""]
    gpu = results.get("gpu")
    if not gpu:
        return [
            *out,
            "**The GPU numbers are not yet measured.** On a machine with a GPU run "
            f"`{GPU_COMMAND}` and save its JSON as `benchmarks/gpu_results.json`; "
            "the next run of the suite puts it here.",
            "",
        ]
    rows = [r for r in gpu["rows"] if "images_per_s" in r]
    out += [
        f"Measured with `benchmarks/gpu_train.py` on **{gpu['device']}** (torch {gpu.get('torch')}, CUDA "
        f"{gpu.get('cuda')}), not by this CPU run; {gpu.get('provenance', '')} "
        "Random images, full training steps; the original setup and the recipe of each size were timed in the "
        "same run on the same card. Training FLOPs per image are three times the forward FLOPs; the share is "
        f"of the card's dense bf16 peak ({fmt((gpu.get('peak_bf16_flops') or 0) / 1e12)} TFLOP/s).",
        "",
        markdown_table(
            (
                "Setup",
                "Size",
                "Batch (locations)",
                "Images/s",
                "Locations/s",
                "TFLOP/s",
                "Share of peak",
                "vs original",
                "Peak GPU GiB",
                "Warm-up s",
            ),
            [
                (
                    r["setup"],
                    f"{r['size']} px",
                    r["batch"],
                    r["images_per_s"],
                    r["locations_per_s"],
                    r["achieved_tflops"],
                    None if r.get("share_of_peak_bf16") is None else f"{100 * r['share_of_peak_bf16']:.1f} %",
                    r.get("speedup_vs_original"),
                    r.get("peak_gpu_mem_gib"),
                    r.get("warmup_s"),
                )
                for r in rows
            ],
        ),
        f"Reproduce: `{GPU_COMMAND}`.",
        "",
    ]
    return out


def render_markdown(results: dict[str, Any], findings: str | None = None) -> str:
    """The whole ``BENCHMARKS.md`` from the suite's results (and hand-written findings, if any)."""
    found = targets(results)
    start, end = results.get("load_average_start") or [], results.get("load_average_end") or []
    lines = [
        "# Benchmarks",
        "",
        "Reproduce (the CPU suite: about 6 minutes on 2 idle cores, 20 or more on a busy machine):",
        "",
        "```",
        results["command"],
        "```",
        "",
        f"Generated by `benchmarks/run_all.py` on {results['started']} (finished {results.get('finished')}). "
        f"Device: **{results['device']}**, {results['cpu_count']} CPUs, Python {results['python']}, "
        f"torch {results['torch']}.",
        "",
        f"Load average (1, 5, 15 min) at the start: {', '.join(fmt(x) for x in start) or 'n/a'}; "
        f"at the end: {', '.join(fmt(x) for x in end) or 'n/a'}. A load above the number of CPUs means other work "
        "shared the machine: absolute rates are then low and noisy, while ratios measured in alternating rounds "
        "stay comparable.",
        "",
    ]
    if results.get("quick"):
        lines += ["**Quick mode: tiny settings that only check the suite works; the numbers mean nothing.**", ""]
    lines += ["## Targets", "", markdown_table(TARGET_HEADERS, [t.row() for t in found])]
    for part in (_data_md, _training_md, _data_wait_md, _inference_md, _scale_md, _gpu_md):
        lines += part(results)
    if findings:
        lines += ["## Findings and changes", "", findings.strip(), ""]
    return "\n".join(line for line in lines if line is not None).rstrip() + "\n"


_MARKED = re.compile(r"<!-- ([\w-]+):start -->.*?<!-- \1:end -->\n?", re.DOTALL)


def keep_marked_sections(rendered: str, previous: str) -> str:
    """``rendered`` followed by every section of ``previous`` kept between markers that it lacks.

    Sections that other scripts write or that are maintained by hand (the ablation, serving,
    embedding cache) sit between ``<!-- name:start -->`` and ``<!-- name:end -->``; a
    regenerated report must not drop them.

    Args:
        rendered: The report just rendered from the results.
        previous: The report as it was on disk ("" when there was none).
    """
    present = {m.group(1) for m in _MARKED.finditer(rendered)}
    kept = [m.group(0).rstrip("\n") for m in _MARKED.finditer(previous) if m.group(1) not in present]
    if not kept:
        return rendered
    return rendered.rstrip("\n") + "\n\n" + "\n\n".join(kept) + "\n"
