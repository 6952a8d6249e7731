"""Peak resident memory of `geoguess serve` under 32 concurrent 15.6 MB uploads, with and without the upload cap.

    python benchmarks/serve_upload_memory.py

Starts two real servers on 127.0.0.1 (``--max-uploads 1000``: no cap; the default 8), sends each
32 concurrent ``predict-batch`` requests whose body is a 15.6 MB multipart upload (four copies of
one large, incompressible PNG per location, refused at decoding for their declared pixels, so that
the memory measured is the upload's, not the forward pass's), and prints each server's peak
resident memory (``VmHWM``) and the answers' statuses.
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx
import numpy as np
from _serve_helpers import build_models
from PIL import Image

from geoguess_utils.serve.loadtest import start_server, stop_server

CONCURRENT = 32
UPLOAD_MB = 15.6


def peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(row for row in status if row.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def noise_png(side: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=0)
    return out.getvalue()


async def send_all(url: str, files: list[tuple[str, tuple[str, bytes, str]]]) -> Counter:
    async with httpx.AsyncClient(timeout=300) as client:
        answers = await asyncio.gather(
            *(client.post(f"{url}/models/clf/predict-batch", files=files) for _ in range(CONCURRENT))
        )
    return Counter(answer.status_code for answer in answers)


def main() -> None:
    base = Path(tempfile.mkdtemp())
    _sample, models = build_models(base / "served", locations=4)
    photo = noise_png(1140)  # about 3.9 MB: four make one 15.6 MB location
    files = [(f"loc/{h}", (f"{h}.png", photo, "image/png")) for h in (0, 90, 180, 270)]
    body_mb = 4 * len(photo) / 1e6
    for label, options in (("no cap (--max-uploads 1000)", ["--max-uploads", "1000"]), ("default (8)", [])):
        server = start_server(models, [*options, "--max-pixels", "1000000", "--max-upload-mb", "20"])
        try:
            before = peak_mb(server.process.pid)
            statuses = asyncio.run(send_all(server.url, files))
            after = peak_mb(server.process.pid)
        finally:
            stop_server(server)
        print(
            f"{label}: {CONCURRENT} concurrent uploads of {body_mb:.1f} MB: "
            f"peak resident {before:.0f} -> {after:.0f} MB; statuses {dict(statuses)}"
        )


if __name__ == "__main__":
    main()
