"""``geoguess embed``: compute (or check) the embedding cache of dataset roots.

Every view of every location goes through a backbone once; the features are memory-mapped
from one float16 file that training (``--data.embeddings.enabled true``) and the
k-nearest-neighbour model read. Runs through ``Trainer.predict``: a GPU and bf16 are used
when present.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("--data", required=True, nargs="+", type=Path, help="dataset root(s) holding data/ or images/")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--backbone", default="efficientnet_lite0", help="registered backbone name (default)")
    source.add_argument("--ckpt", type=Path, help="use the backbone (and image size) of a trained checkpoint")
    parser.add_argument("--no-pretrained", action="store_true", help="random backbone weights (for tests)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the views fed to the backbone (default 64)")
    parser.add_argument("--cache-dir", type=Path, help="folder of the dataset's caches (default under ~/.cache)")
    parser.add_argument("--batch-size", type=int, default=64, help="locations per forward pass (default 64)")
    parser.add_argument("--num-workers", type=int, default=0, help="image-loading processes (default 0)")
    parser.add_argument("--device", default="auto", help="'auto' (a GPU when there is one), 'cpu', 'cuda', 'cuda:N'")


def run(args: argparse.Namespace) -> int:
    """Build the cache unless it is fresh; print its shape, where it is and the rate."""
    from geoguess_utils import embeddings
    from geoguess_utils.data.enrich import default_cache_dir
    from geoguess_utils.data.geodataset import GeoDataset
    from geoguess_utils.data.loading import load_locations
    from geoguess_utils.errors import ConfigError

    if args.image_size < 8 or args.batch_size < 1:
        raise ConfigError("--image-size must be at least 8 and --batch-size at least 1")
    roots = [str(r) for r in args.data]
    if args.ckpt is not None:
        from geoguess_utils.tasks.loading import load_task

        task = load_task(args.ckpt)
        embedder = embeddings.Embedder.of_task(task)
        size = int(task.image_size)
    else:
        embedder = embeddings.Embedder.by_name(args.backbone, pretrained=not args.no_pretrained)
        size = args.image_size
    table = load_locations(roots, require_labels=False)
    dataset = GeoDataset(table, size, normalization=embedder.normalization)
    cache_dir = args.cache_dir or default_cache_dir(roots)
    start = time.perf_counter()
    cache = embeddings.build_embeddings(
        embedder,
        dataset,
        cache_dir,
        "all",
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        progress=sys.stderr.isatty(),
    )
    seconds = time.perf_counter() - start
    n, views, width = cache.shape
    print(f"{n} locations x {views} views x {width} features ({embedder.name}, {size} px): {cache.data_path}")
    print(f"{seconds:.1f} s, {n * views / max(seconds, 1e-9):.0f} views/s (0 s when the cache was already fresh)")
    return 0
