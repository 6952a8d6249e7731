"""``geoguess serve``: the inference service and the "where is this?" page, on uvicorn.

Only the checkpoints directly inside ``--models`` can be used. The page is at ``/``, the
OpenAPI documentation at ``/docs``. Listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options."""
    parser.add_argument("--models", required=True, type=Path, help="folder of *.ckpt files (the only ones served)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--device", default="auto", help="'auto' (a GPU when there is one), 'cpu', 'cuda', ...")
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest request body, MB (default 20)")
    parser.add_argument(
        "--max-pixels", type=int, help="largest photo, width*height (default: the reader's decompression-bomb limit)"
    )
    parser.add_argument(
        "--max-batch", type=int, default=32, help="most locations per forward pass; 1 turns batching off (default 32)"
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="longest a request waits to share a pass, ms (default 5)"
    )
    parser.add_argument(
        "--max-queue", type=int, default=64, help="most requests waiting; beyond it answers 503 (default 64)"
    )
    parser.add_argument("--max-locations", type=int, default=256, help="most locations per predict-batch request")
    parser.add_argument("--sample", type=Path, help="dataset root for the page's 'random synthetic location' button")
    parser.add_argument("--tiles", action="store_true", help="offer OpenStreetMap tiles on the page (needs internet)")
    parser.add_argument("--preload", action="store_true", help="load every checkpoint at start-up")
    parser.add_argument(
        "--torch-threads", type=int, help="threads of the forward pass on a CPU (default: half the CPUs, at least 1)"
    )
    parser.add_argument(
        "--max-request-megapixels",
        type=float,
        default=512.0,
        help="most source megapixels one batch request's photos may declare in all (default 512; 413 beyond)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host name the server answers besides this machine's names and --host (repeatable; "
        "requests for other names get a 400, a guard against DNS rebinding)",
    )
    parser.add_argument(
        "--max-uploads",
        type=int,
        default=8,
        help="requests with a body read and decoded at once (default 8; each may take a few times its size in memory)",
    )
    parser.add_argument(
        "--max-waiting-uploads",
        type=int,
        default=64,
        help="requests with a body waiting for one of those (default 64; 503 beyond)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a request's headers may take to arrive (default 10; 408 and closed beyond)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=120.0,
        help="seconds a request's body may take to arrive after its headers (default 120; 408 and closed beyond)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="connections open at once (default 256, lowered to fit ulimit -n); beyond, 503 and closed at once",
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def run(args: argparse.Namespace) -> int:
    """Build the app and serve it until interrupted."""
    import uvicorn

    from geoguess_utils.data.reader import DEFAULT_MAX_PIXELS
    from geoguess_utils.errors import ConfigError
    from geoguess_utils.serve.app import ServeConfig, create_app
    from geoguess_utils.serve.connections import ConnectionLimits, fitted_to_file_limit, guarded_protocol

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServeConfig(
        models_dir=args.models,
        device=args.device,
        max_upload_bytes=int(args.max_upload_mb * 1_000_000),
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_locations=args.max_locations,
        sample_dir=args.sample,
        tiles=args.tiles,
        preload=args.preload,
        torch_threads=args.torch_threads,
        allowed_hosts=_allowed_hosts(args.host, args.allowed_host),
        max_request_pixels=int(args.max_request_megapixels * 1_000_000),
        max_uploads=args.max_uploads,
        max_waiting_uploads=args.max_waiting_uploads,
    )
    try:
        limits = ConnectionLimits(args.header_timeout, args.body_timeout, args.max_connections)
    except ValueError as exc:
        raise ConfigError(f"geoguess serve: {exc}") from exc
    app = create_app(config)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("geoguess.serve").warning(
            "listening on %s: anyone who can reach this address can use the models", args.host
        )
    print(f"geoguess serve: http://{args.host}:{args.port}/ (API docs at /docs), models from {args.models}", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        http=guarded_protocol(fitted_to_file_limit(limits)),
    )
    return 0


def _allowed_hosts(host: str, extra: list[str]) -> tuple[str, ...] | None:
    """This machine's names, the listening address and ``--allowed-host`` names; ``None``: any name."""
    from geoguess_utils.serve.hosts import default_allowed_hosts

    derived = default_allowed_hosts(host)
    if derived is None and not extra:
        logging.getLogger("geoguess.serve").warning(
            "listening on every interface (%s) without --allowed-host: requests for any host name are answered", host
        )
        return None
    return tuple(dict.fromkeys([*(derived or ()), *extra]))
