"""Hostile data: markup, control characters, traversal, decompression bombs, tampered checkpoints.

Datasets come from strangers (a zip from a forum, a classmate's folder); their uuids,
paths and CSV cells are text an attacker chose. They must reach the map and the reports
as inert text, must never make geoguess read or write outside the dataset, and an image
that declares itself enormous must be refused before it is decoded.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _reliability_helpers import tiny_task, write_checkpoint
from PIL import Image

from geoguess_utils import cli
from geoguess_utils.cells import square
from geoguess_utils.cells.context import GeoContext
from geoguess_utils.checkpoints.files import load_checkpoint
from geoguess_utils.data import datamodule, images, layout, loading, reader, validation
from geoguess_utils.data.settings import CacheSettings, ReadSettings, SplitSettings
from geoguess_utils.datasets import streetview
from geoguess_utils.errors import CheckpointError, DataError
from geoguess_utils.geo import borders
from geoguess_utils.tasks.classification import ClassificationTask
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.viz import webmap, webmap_html

HOSTILE_TEXT = {
    "script": "<script>alert(1)</script>",
    "attribute": '"><img src=x onerror=alert(2)>',
    "template": "`${alert(3)}`\\u0060",
    "script_end": "</script><script>alert(4)</script>",
    "quotes": "'\"&amp;&#x3c;",
    "unicode": "Zagreb\u202egpj.exe \u200b\u2028\u2029 \U0001f600 \u0000 \ud7ff",
    "long": "<b>" + "x" * 200_000 + "</b>",
}


# ----------------------------------------------------------------------------- the map


@pytest.fixture(scope="module")
def class_table():
    lat, lon = borders.sample_points(100, np.random.default_rng(5))
    return square.fit_class_table(square.build_grid(0.5), lat, lon)


def _predictions(n: int = 4) -> pd.DataFrame:
    lat, lon = borders.sample_points(n, np.random.default_rng(1))
    return pd.DataFrame(
        {"uuid": [f"loc-{i}" for i in range(n)], "true_lat": lat, "true_lon": lon, "pred_lat": lat, "pred_lon": lon}
    )


def _tag_counts(page: str) -> tuple[int, ...]:
    lowered = page.lower()
    return tuple(lowered.count(tag) for tag in ("<script", "</script", "<img", "<svg", "<b>", "javascript:"))


@pytest.mark.parametrize("name", list(HOSTILE_TEXT))
def test_hostile_uuids_paths_and_titles_stay_text_in_the_map(name, class_table, tmp_path):
    hostile = HOSTILE_TEXT[name]
    benign = webmap.map_html(webmap.build_map(_predictions(), class_table, thumbnails=False))
    preds = _predictions()
    preds.loc[1, "uuid"] = hostile
    for column in webmap_html.THUMBNAIL_COLUMNS:
        preds[column] = str(tmp_path / f"{hostile[:100]}.jpg")  # missing files: their names go in the popup
    probs = np.full((len(preds), len(class_table)), 1.0 / len(class_table))
    with pytest.warns(UserWarning, match="could not be shown"):
        fmap = webmap.build_map(preds, class_table, probs, focus=hostile, title=hostile)
    page = webmap.map_html(fmap)
    assert _tag_counts(page) == _tag_counts(benign)  # no element, handler or bold text came in with the data
    if any(c in hostile for c in "<>\"'`$&\\"):
        assert hostile not in page
    assert webmap_html.escape(hostile) in page  # shown, as text
    webmap.save_map(fmap, tmp_path / "map.html")
    assert _tag_counts((tmp_path / "map.html").read_text(encoding="utf-8")) == _tag_counts(benign)


# ----------------------------------------------------------------------------- reports

HOSTILE_UUIDS = [
    "<script>alert(1)</script>",
    "evil\nfake-uuid\tmissing_row\tforged line",
    "\x1b[2J\x1b[31mred",
    '=HYPERLINK("http://x","click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "Zagreb\u202egpj.exe",
    "a" * 10_000,
]


@pytest.fixture
def hostile_root(tmp_path) -> Path:
    root = tmp_path / "root"
    (root / "data").mkdir(parents=True)
    with open(root / "data.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uuid", "latitude", "longitude"])
        for uuid in HOSTILE_UUIDS:
            writer.writerow([uuid, "45.8", "15.97"])
        writer.writerow(["fine", "<svg onload=alert(5)>", "\x1b[0m"])
    return root


def _assert_inert_line(line: str) -> None:
    assert "\x1b" not in line and "\u202e" not in line and "\r" not in line


def test_validation_report_text_has_one_line_per_problem(hostile_root, capsys):
    report = validation.validate_roots([hostile_root])
    assert {p.uuid for p in report.problems} >= set(HOSTILE_UUIDS)
    lines = report.format().split("\n")
    assert len(lines) == len(report.problems) + 1  # a newline in a uuid cannot forge a problem line
    for line in lines:
        _assert_inert_line(line)
        assert line.count("\t") in (0, 3)
    with pytest.raises(DataError) as raised:
        loading.load_locations([hostile_root])
    _assert_inert_line(str(raised.value))
    assert cli.main(["validate", str(hostile_root)]) == 1
    out = capsys.readouterr().out
    _assert_inert_line(out)
    assert out.count("\n") == len(report.problems) + 1


def test_validation_report_csv_is_one_row_per_problem_and_never_a_formula(hostile_root, tmp_path):
    report = validation.validate_roots([hostile_root])
    path = report.write_csv(tmp_path / "report.csv")
    raw = path.read_bytes()
    assert raw.count(b"\n") == len(report.problems) + 1  # one physical line per problem
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(report.problems)
    for row in rows:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@")), cell
            _assert_inert_line(cell)
    assert any(row["uuid"] == "'" + '=HYPERLINK("http://x","click")' for row in rows)
    assert any(row["uuid"] == "evil\\x0afake-uuid\\x09missing_row\\x09forged line" for row in rows)


# ----------------------------------------------------------------------------- outside the dataset


def _good_location(folder: Path, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for heading in layout.HEADINGS:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{heading}.jpg")


def test_traversal_and_escaping_links_never_read_or_write_outside_the_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    secret = tmp_path / "private"
    _good_location(secret / "photos", 99)  # a user's own pictures next to the dataset
    names = ["good0", "good1", "good2", "good3", "good4", "linked"]
    for i, name in enumerate(names):
        _good_location(root / "data" / name, i)
    linked = root / "data" / "linked" / "90.jpg"
    linked.unlink()
    linked.symlink_to(secret / "photos" / "90.jpg")  # a view that is really someone's private photo
    traversal = ["../../private/photos", "..", "/etc", "good0/../../private", "..\\..\\x", "%2e%2e%2fetc"]
    rows = [(n, 45.80 + 0.01 * i, 15.97) for i, n in enumerate(names)] + [(u, 45.8, 15.97) for u in traversal]
    pd.DataFrame(rows, columns=["uuid", "latitude", "longitude"]).to_csv(root / "data.csv", index=False)

    report = validation.validate_roots([root])
    kinds = {(p.uuid, p.kind) for p in report.problems}
    assert {(u, "bad_uuid") for u in traversal} <= kinds
    assert ("linked", "outside_root") in kinds
    with pytest.raises(DataError, match=r"linked/90\.jpg: symbolic link resolves to .*private"):
        loading.load_locations([root])

    opened: list[Path] = []
    real_open = Image.open

    def recording_open(fp, *args, **kwargs):
        opened.append(Path(fp).resolve())
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", recording_open)
    before = {p for p in tmp_path.rglob("*")}
    run_dir, cache_dir = tmp_path / "run", tmp_path / "cache"
    with pytest.warns(UserWarning, match="skipped"):
        module = datamodule.GeoDataModule(
            roots=[str(root)],
            image_size=16,
            batch_size=2,
            run_dir=str(run_dir),
            reading=ReadSettings(lenient=True),
            cache=CacheSettings(dir=str(cache_dir), images="memmap"),
            split=SplitSettings(fractions=(0.6, 0.2, 0.2)),
        )
        module.setup("fit")
    for loader in (module.train_dataloader(), module.val_dataloader()):
        for _ in loader:
            pass
    assert opened and all(path.is_relative_to(root.resolve()) for path in opened), opened
    assert "linked" not in set(module.locations["uuid"])
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(p.is_relative_to(run_dir) or p.is_relative_to(cache_dir) for p in created), created


def test_a_tampered_download_status_cannot_send_files_outside(tmp_path):
    status = tmp_path / "streetview_status.csv"
    plan = streetview.plan_samples(3, seed=0, radius_m=50)
    plan.loc[1, "uuid"] = "../../../home/user"
    plan.to_csv(status, index=False)
    with pytest.raises(DataError, match=r"line 3: uuid '\.\./\.\./\.\./home/user' is not a plain folder name"):
        streetview.read_status(status)


# ----------------------------------------------------------------------------- decompression bombs


def _jpeg_declaring(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 30)).save(buffer, format="JPEG")
    payload = bytearray(buffer.getvalue())
    sof = payload.index(b"\xff\xc0")  # baseline start-of-frame: length, precision, height, width
    payload[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(payload)


def _png_declaring(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="PNG")
    payload = bytearray(buffer.getvalue())
    header = payload[12:16] + struct.pack(">II", width, height) + payload[24:29]
    payload[16:24] = struct.pack(">II", width, height)
    payload[29:33] = struct.pack(">I", zlib.crc32(header))  # a valid header: only the size lies
    return bytes(payload)


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_a_tiny_file_declaring_30000_by_30000_pixels_is_refused(kind, tmp_path):
    payload = _jpeg_declaring(30000, 30000) if kind == "jpeg" else _png_declaring(30000, 30000)
    assert len(payload) < 1000
    bomb = tmp_path / "0.jpg"
    bomb.write_bytes(payload)
    with pytest.raises(DataError, match=r"0\.jpg: .*(30000x30000 pixels exceeds the limit|decompression bomb)"):
        images.load_view(bomb, 32)
    with pytest.raises(DataError, match="decompression bomb"):
        webmap_html.thumbnail_data_uri(bomb)
    problem = validation._inspect_image(str(bomb), "u", True, reader.DEFAULT_MAX_PIXELS).problem
    assert problem is not None and problem.kind in ("image_too_large", "unreadable_image")
    assert "30000" in problem.message or "decompression bomb" in problem.message


def test_the_pixel_limit_is_what_refuses_it(tmp_path):
    """The same file declaring a normal size decodes, and the limit is configurable."""
    small = tmp_path / "small.jpg"
    small.write_bytes(_jpeg_declaring(16, 16))
    assert images.load_view(small, 8).shape == (8, 8, 3)
    big = tmp_path / "big.jpg"
    big.write_bytes(_jpeg_declaring(5000, 5000))  # 25 Mpx > the default 16.8 Mpx
    with pytest.raises(DataError, match="5000x5000 pixels exceeds the limit of 16777216"):
        images.load_view(big, 8)


# ----------------------------------------------------------------------------- tampered checkpoints


@pytest.fixture(scope="module")
def context(croatia_points) -> GeoContext:
    lat, lon = croatia_points
    return GeoContext.fit(lat[:300], lon[:300], spacing_deg=0.5)


@pytest.fixture(scope="module")
def good_checkpoint(context, tmp_path_factory) -> Path:
    return write_checkpoint(tiny_task(ClassificationTask, context), tmp_path_factory.mktemp("ck") / "good.ckpt")


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("where", ["hyper_parameters", "geoguess", "state_dict"])
def test_pickled_code_anywhere_in_a_checkpoint_is_refused_unrun(where, good_checkpoint, tmp_path, capsys):
    saved = load_checkpoint(good_checkpoint)
    marker = tmp_path / "payload_ran"
    if where == "state_dict":
        saved["state_dict"]["net.head.1.bias"] = _Payload(marker)
    else:
        saved[where]["note"] = _Payload(marker)
    evil = tmp_path / "evil.ckpt"
    torch.save(saved, evil)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.ckpt.*pickled Python objects"):
        load_task(evil)
    argv = ["predict", "--ckpt", str(evil), "--data", str(tmp_path), "--out", str(tmp_path / "p.csv")]
    assert cli.main(argv) == 2
    assert "refusing to load" in capsys.readouterr().err
    assert not marker.exists()


def test_tampered_records_say_what_is_wrong(good_checkpoint, context, tmp_path):
    assert load_task(good_checkpoint).context.fingerprint() == context.fingerprint()

    def tampered(change) -> Path:
        saved = load_checkpoint(good_checkpoint)
        change(saved)
        path = tmp_path / f"t{len(list(tmp_path.iterdir()))}.ckpt"
        torch.save(saved, path)
        return path

    def other_classes(saved):
        saved["geoguess"]["context"]["class_table"]["clipped_lat"][0] += 1.0

    with pytest.raises(CheckpointError, match="does not match its fingerprint"):
        load_task(tampered(other_classes))

    def other_backbone(saved):
        saved["geoguess"]["backbone"] = "efficientnet_lite0"

    with pytest.raises(CheckpointError, match="weights do not fit a efficientnet_lite0 classification model"):
        load_task(tampered(other_backbone))

    def other_task(saved):
        saved["geoguess"]["task"] = "<script>"

    with pytest.raises(CheckpointError, match="unknown task '<script>'"):
        load_task(tampered(other_task))
    with pytest.raises(CheckpointError, match=r"backbone 'shufflenet_v2_x0_5', but backbone 'resnet18'"):
        load_task(good_checkpoint, backbone="resnet18")


# ----------------------------------------------------------------------------- outputs onto inputs


@pytest.fixture
def small_root(tmp_path) -> Path:
    root = tmp_path / "root"
    argv = ["make-sample", "--out", str(root), "--locations", "3", "--size", "32", "--seed", "2", "--workers", "1"]
    assert cli.main(argv) == 0
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_no_output_may_overwrite_an_input_dataset_or_checkpoint(small_root, good_checkpoint, tmp_path, capsys):
    before = _snapshot(small_root)
    view = next(small_root.glob("images/*/0.jpg"))
    link = tmp_path / "innocent.csv"
    link.symlink_to(small_root / "data.csv")
    ckpt_copy = tmp_path / "copy.ckpt"
    ckpt_copy.write_bytes(good_checkpoint.read_bytes())
    common = ["--ckpt", str(ckpt_copy), "--data", str(small_root)]
    cases = {
        "predict over data.csv": (["predict", *common, "--out", str(small_root / "data.csv")], "data.csv"),
        "predict through a link": (["predict", *common, "--out", str(link)], "data.csv"),
        "predict into the images": (["predict", *common, "--out", str(view.parent / "p.csv")], "image folder"),
        "predict over the checkpoint": (["predict", *common, "--out", str(ckpt_copy)], "--ckpt"),
        "map over a view": (["map", *common, "--out", str(view)], "image folder"),
        "predict caching into the images": (
            ["predict", *common, "--out", str(tmp_path / "p.csv"), "--cache-dir", str(small_root / "images" / "c")],
            "image folder",
        ),
        "validate report over data.csv": (
            ["validate", str(small_root), "--report", str(small_root / "data.csv")],
            "data.csv",
        ),
    }
    for name, (argv, named) in cases.items():
        assert cli.main(argv) == 2, name
        err = capsys.readouterr().err
        protected = str(ckpt_copy) if named == "--ckpt" else str(small_root)
        assert "refusing --" in err and named in err and protected in err, (name, err)
        assert _snapshot(small_root) == before, name
    assert ckpt_copy.read_bytes() == good_checkpoint.read_bytes()
    assert link.is_symlink()
    beside = small_root / "predictions.csv"  # next to the dataset, not over it: fine
    assert cli.main(["predict", *common, "--out", str(beside), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert len(pd.read_csv(beside)) == 3


def test_an_image_folder_linked_outside_the_root_is_refused_in_one_message(small_root, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    (small_root / "images").rename(elsewhere)  # valid images, but not the dataset's own
    (small_root / "images").symlink_to(elsewhere)
    with pytest.raises(DataError, match=r"image folder .*images resolves to .*elsewhere, outside the root"):
        reader.find_image_dir(small_root)
    assert cli.main(["validate", str(small_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "outside the root" in err
    system = tmp_path / "etc_like"  # a folder of unrelated files (as /etc is) must not become 100 "problems"
    system.mkdir()
    for i in range(100):
        (system / f"conf{i}").write_text("x")
    (small_root / "images").unlink()
    (small_root / "images").symlink_to(system)
    assert cli.main(["validate", str(small_root)]) == 2
    captured = capsys.readouterr()
    assert "conf" not in captured.out + captured.err and "outside the root" in captured.err
    with pytest.raises(DataError, match="outside the root"):
        loading.load_locations([small_root])


def test_an_image_folder_linked_within_the_root_is_still_accepted(small_root):
    (small_root / "images").rename(small_root / "pictures")
    (small_root / "images").symlink_to("pictures")
    assert reader.find_image_dir(small_root) == small_root / "images"
    assert validation.validate_roots([small_root]).ok


@pytest.mark.parametrize(
    "field, value, wanted",
    [
        ("image_size", "abc", "an integer number of pixels"),
        ("image_size", 100000, "an integer number of pixels from 8 to 1024"),
        ("image_size", 4096, "an integer number of pixels from 8 to 1024"),
        ("image_size", True, "an integer"),
        ("image_size", -32, "an integer"),
        ("task", 7, "a non-empty string"),
        ("backbone", "", "a non-empty string"),
        ("normalization", {"mean": [0.5], "std": [1, 1, 1]}, "three finite numbers"),
        ("normalization", {"mean": [0.5, float("nan"), 0.5], "std": [1, 1, 1]}, "three finite numbers"),
        ("headings", ["north", 90, 180, 270], "four numbers"),
        ("context", [1, 2], "a dict"),
    ],
)
def test_record_fields_are_checked_at_load(field, value, wanted, good_checkpoint, sample_for_records, tmp_path, capsys):
    saved = load_checkpoint(good_checkpoint)
    saved["geoguess"][field] = value
    bad = tmp_path / "record.ckpt"
    torch.save(saved, bad)
    with pytest.raises(CheckpointError, match=rf"record field '{field}' is .*; expected .*{wanted}"):
        load_task(bad)
    argv = ["predict", "--ckpt", str(bad), "--data", str(sample_for_records), "--out", str(tmp_path / "p.csv")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"record field '{field}'" in err and "Traceback" not in err and "0.jpg" not in err


@pytest.fixture(scope="module")
def sample_for_records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("records") / "root"
    argv = ["make-sample", "--out", str(root), "--locations", "2", "--size", "32", "--seed", "3", "--workers", "1"]
    assert cli.main(argv) == 0
    return root


def test_an_empty_or_cut_checkpoint_gives_a_reason(good_checkpoint, tmp_path):
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt is empty \(0 bytes\)"):
        load_checkpoint(empty)
    for size in (1, 100, good_checkpoint.stat().st_size // 2):
        cut = tmp_path / f"cut{size}.ckpt"
        cut.write_bytes(good_checkpoint.read_bytes()[:size])
        with pytest.raises(CheckpointError) as caught:
            load_checkpoint(cut)
        reason = str(caught.value).split("checkpoint", 1)[-1]
        assert reason.rstrip().rstrip(":") and not str(caught.value).rstrip().endswith(":"), str(caught.value)


def test_a_foreign_class_table_names_the_checkpoint_side_correctly(context, croatia_points, tmp_path):
    lat, lon = croatia_points
    finer = GeoContext.fit(lat[:300], lon[:300], spacing_deg=0.25)
    assert finer.num_classes > context.num_classes
    other_run = write_checkpoint(tiny_task(ClassificationTask, finer), tmp_path / "other_run.ckpt")
    configured = tiny_task(ClassificationTask, context)  # as ``fit --ckpt_path`` configures it from the data
    with pytest.raises(CheckpointError) as caught:
        configured.on_load_checkpoint(load_checkpoint(other_run))
    message = str(caught.value)
    assert f"{finer.num_classes} classes in the checkpoint vs {context.num_classes} requested" in message
    assert f"checkpoint {finer.fingerprint()} vs requested {context.fingerprint()}" in message


def test_a_uuid_with_spaces_around_it_is_shown_quoted(small_root, capsys):
    table = pd.read_csv(small_root / "data.csv", dtype=str)
    plain = table.loc[0, "uuid"]
    table.loc[0, "uuid"] = f"  {plain}"
    table.to_csv(small_root / "data.csv", index=False)
    assert cli.main(["validate", str(small_root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    spaced = [line for line in lines if line.startswith(repr(f"  {plain}") + "\t")]
    bare = [line for line in lines if line.startswith(plain + "\t")]
    assert spaced and bare  # the row and its folder: they no longer look like the same uuid


# ----------------------------------------------------------------------------- one exit-code convention


def test_every_command_documents_the_exit_codes(capsys):
    for name in [*cli.COMMANDS, *cli.PASSTHROUGH]:
        with pytest.raises(SystemExit) as done:
            cli.main([name, "--help"])
        assert done.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for code in cli.EXIT_CODES:
            assert f"{code} " in text.split("exit status:", 1)[-1], (name, code)


@pytest.mark.parametrize(
    "raised, code, said",
    [
        (DataError("bad row"), 2, "error: bad row"),
        (PermissionError(13, "Permission denied", "/some/file"), 2, "error: Permission denied (/some/file)"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (ValueError("unexpected"), 3, "internal error (ValueError)"),
    ],
)
def test_errors_map_to_the_same_exit_status_in_every_command(raised, code, said, monkeypatch, capsys):
    import importlib

    for name, (module_name, _) in {**cli.COMMANDS, **cli.PASSTHROUGH}.items():
        module = importlib.import_module(module_name)

        def fail(*args, **kwargs):
            raise raised

        monkeypatch.setattr(module, "run", fail)
        argv = {
            "predict": ["--ckpt", "c", "--data", "d", "--out", "o"],
            "map": ["--ckpt", "c", "--data", "d"],
            "evaluate": ["p", "--truth", "t"],
            "calibrate": ["--ckpt", "c"],
            "validate": ["r"],
            "download-streetview": ["--locations", "1", "--out", "o"],
            "download-mapillary": ["--locations", "1", "--out", "o"],
            "make-sample": ["--out", "o"],
            "embed": ["--data", "d"],
            "serve": ["--models", "m"],
        }.get(name, [])
        assert cli.main([name, *argv]) == code, name
        assert said in capsys.readouterr().err, name


def test_the_same_fault_gives_the_same_status_in_predict_and_map(small_root, tmp_path, capsys):
    for name in ("predict", "map"):
        out = tmp_path / f"{name}.out"
        assert (
            cli.main([name, "--ckpt", str(tmp_path / "missing.ckpt"), "--data", str(small_root), "--out", str(out)])
            == 2
        )
        assert "does not exist" in capsys.readouterr().err
