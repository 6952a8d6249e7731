"""Screenshot of the "where is this?" page showing a prediction with its search region (for the README).

Starts ``geoguess serve`` on 127.0.0.1 with a calibrated checkpoint (copied into a temporary
models folder) and its synthetic sample, asks it for the search regions of some test-split
locations, picks a typical one (the median area among those whose region holds the truth),
uploads its four photos in a headless Chromium, marks its true position and saves the page.

Run it once, by hand (not a test)::

    .venv/bin/python benchmarks/search_region_screenshot.py
    .venv/bin/python benchmarks/search_region_screenshot.py --uuid <uuid> --out figures/search_region.png
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import httpx
import pandas as pd
import shapely

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the browser helpers of the tests

from _browser import chromium, missing, skip_reason, wait_for  # noqa: E402

from geoguess_utils.data.layout import HEADINGS  # noqa: E402
from geoguess_utils.serve.loadtest import start_server, stop_server  # noqa: E402

DEFAULT_RUN = REPO / "runs" / "coverage" / "classification"
MODEL_NAME = "synthetic_classifier"


def photo_fields(root: Path, uuid: str) -> dict:
    return {
        h: (f"{h}.jpg", (root / "images" / uuid / f"{h}.jpg").read_bytes(), "image/jpeg") for h in map(str, HEADINGS)
    }


def pick_location(url: str, root: Path, uuids: list[str], coverage: float) -> str:
    """The location whose region has the median area among those whose region holds the truth."""
    truth = pd.read_csv(root / "data.csv", dtype={"uuid": str}).set_index("uuid")
    found = []
    for uuid in uuids:
        answer = httpx.post(
            f"{url}/models/{MODEL_NAME}/predict",
            params={"region": coverage},
            files=photo_fields(root, uuid),
            timeout=120,
        ).json()
        region = answer["region"]
        if region is None:
            raise SystemExit(f"{MODEL_NAME} is not calibrated: run geoguess calibrate --ckpt on it first")
        geometry = region["geojson"]["geometry"]
        lat, lon = truth.loc[uuid, ["latitude", "longitude"]]
        if geometry is not None and shapely.geometry.shape(geometry).contains(shapely.Point(lon, lat)):
            found.append((region["area_km2"], uuid))
    if not found:
        raise SystemExit("no region among those locations holds its truth; give one with --uuid")
    found.sort()
    area, uuid = found[len(found) // 2]
    print(f"picked {uuid}: region of {area:,.0f} km² (median of {len(found)} covered of {len(uuids)})")
    return uuid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, default=DEFAULT_RUN / "checkpoints" / "best.ckpt")
    parser.add_argument("--split-csv", type=Path, default=DEFAULT_RUN / "split.csv")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "synthetic_settlements")
    parser.add_argument("--uuid", help="location to show (default: a typical one of the test split)")
    parser.add_argument("--candidates", type=int, default=40, help="test locations to choose among")
    parser.add_argument("--coverage", default="0.9", choices=("0.8", "0.9", "0.95"))
    parser.add_argument("--out", type=Path, default=REPO / "figures" / "search_region.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1150)
    args = parser.parse_args()
    lacking = missing()
    if lacking:
        raise SystemExit(skip_reason(lacking))
    work = Path(tempfile.mkdtemp(prefix="search_region_"))
    try:
        models = work / "models"
        models.mkdir()
        shutil.copy(args.ckpt, models / f"{MODEL_NAME}.ckpt")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        server = start_server(models, ["--sample", str(args.data)], timeout_s=300, env=env)
        try:
            uuid = args.uuid
            if uuid is None:
                split = pd.read_csv(args.split_csv, dtype=str)
                uuids = split.loc[split["split"] == "test", "uuid"].head(args.candidates).tolist()
                uuid = pick_location(server.url, args.data, uuids, float(args.coverage))
            truth = pd.read_csv(args.data / "data.csv", dtype={"uuid": str}).set_index("uuid")
            lat, lon = (float(v) for v in truth.loc[uuid, ["latitude", "longitude"]])
            shoot(server.url, args, uuid, lat, lon, work / "profile")
        finally:
            stop_server(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {args.out}")
    return 0


def shoot(url: str, args: argparse.Namespace, uuid: str, lat: float, lon: float, profile: Path) -> None:
    from selenium.webdriver.support.ui import Select

    driver = chromium(profile, args.width, args.height)
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": args.width, "height": args.height, "deviceScaleFactor": 1, "mobile": False},
        )
        driver.get(url + "/")
        wait_for(driver, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
        Select(driver.find_element("id", "model")).select_by_value(MODEL_NAME)
        Select(driver.find_element("id", "coverage")).select_by_value(args.coverage)
        for heading in HEADINGS:
            driver.find_element("id", f"file-{heading}").send_keys(str(args.data / "images" / uuid / f"{heading}.jpg"))
        driver.execute_script("truth = [arguments[0], arguments[1]];", lat, lon)  # shown as for a sample location
        driver.find_element("id", "locate").click()
        wait_for(driver, lambda d: d.find_element("id", "status").text == "Done.", 120)
        driver.execute_script("map.fitBounds([[42.35, 13.45], [46.55, 19.45]]);")  # all of Croatia in view
        driver.execute_script("return new Promise((done) => setTimeout(done, 800));")
        print(driver.find_element("id", "region").text)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.quit()


if __name__ == "__main__":
    raise SystemExit(main())
