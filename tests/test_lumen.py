"""Reading and validating datasets in the LUMEN layout."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _lumen_fixtures import FAULTS, write_lumen_root
from PIL import Image

from geoguess_utils import cli
from geoguess_utils.data import layout, loading, reader, validation
from geoguess_utils.errors import DataError

DEEP_ONLY = {"corrupt_data"}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A root with four good locations and one location per planted fault (64 px images)."""
    root = tmp_path_factory.mktemp("faulty") / "root"
    return write_lumen_root(root, 4, image_size=64, faults=tuple(FAULTS), seed=3)


@pytest.fixture(scope="module")
def faulty_reports(faulty):
    return validation.validate_roots([faulty.root]), validation.validate_roots([faulty.root], deep=True)


# ----------------------------------------------------------------------------- reading


def test_reads_data_layout_with_unnamed_index_column(tmp_path):
    fx = write_lumen_root(tmp_path / "a", 5, layout="data")
    header = (fx.root / "data.csv").read_text().splitlines()[0]
    assert header == ",uuid,latitude,longitude"  # as the organisers' file
    table = loading.load_locations([fx.root])
    assert list(table.columns) == list(layout.LOCATION_COLUMNS)
    assert table["uuid"].tolist() == fx.uuids
    np.testing.assert_array_equal(table["latitude"].to_numpy(), fx.latitude)
    np.testing.assert_array_equal(table["longitude"].to_numpy(), fx.longitude)
    assert (table["root"] == str(fx.root)).all()
    for heading in layout.HEADINGS:
        expected = [str(fx.image_dir / u / f"{heading}.jpg") for u in fx.uuids]
        assert table[f"path_{heading}"].tolist() == expected
        assert all(os.path.isfile(p) for p in expected)


def test_reads_images_layout_with_extra_columns_in_any_order(tmp_path):
    fx = write_lumen_root(tmp_path / "ext", 6, layout="images", extra_columns=True, seed=5)
    columns = pd.read_csv(fx.root / "data.csv").columns.tolist()
    assert {"Unnamed: 0", "sample_longitude", "status", "radius", "panorama_id"} <= set(columns)
    assert columns.index("latitude") > columns.index("uuid") or columns.index("uuid") > 1  # shuffled order
    table = loading.load_locations([fx.root])
    assert table["uuid"].tolist() == fx.uuids
    np.testing.assert_array_equal(table["latitude"].to_numpy(), fx.latitude)
    assert table["path_90"].str.contains("/images/").all()


def test_merges_several_roots(tmp_path):
    a = write_lumen_root(tmp_path / "a", 3, layout="data", seed=1)
    b = write_lumen_root(tmp_path / "b", 4, layout="images", extra_columns=True, seed=2)
    table = loading.load_locations([a.root, b.root])
    assert table["uuid"].tolist() == a.uuids + b.uuids
    assert table["root"].tolist() == [str(a.root)] * 3 + [str(b.root)] * 4


def test_predict_only_root_lists_folders_without_coordinates(tmp_path):
    fx = write_lumen_root(tmp_path / "test", 4, with_csv=False, seed=9)
    table = loading.load_locations([fx.root], require_labels=False)
    assert sorted(table["uuid"]) == sorted(fx.uuids)
    assert table["latitude"].isna().all() and table["longitude"].isna().all()
    with pytest.raises(DataError, match=r"has no data\.csv"):
        loading.load_locations([fx.root], require_labels=True)


def test_root_errors_name_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        validation.validate_roots([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image folder"):
        validation.validate_roots([tmp_path / "empty"])
    fx = write_lumen_root(tmp_path / "both", 1)
    (fx.root / "images").mkdir()
    with pytest.raises(DataError, match="both data/ and images/"):
        validation.validate_roots([fx.root])


def test_csv_without_required_column_names_file_and_columns(tmp_path):
    fx = write_lumen_root(tmp_path / "r", 2)
    frame = pd.read_csv(fx.root / "data.csv").rename(columns={"longitude": "lng"})
    frame.to_csv(fx.root / "data.csv", index=False)
    with pytest.raises(DataError, match=r"data\.csv lacks the column\(s\) longitude"):
        validation.validate_roots([fx.root])
    (fx.root / "data.csv").write_bytes(b"")
    with pytest.raises(DataError, match="not a readable CSV"):
        validation.validate_roots([fx.root])


# ----------------------------------------------------------------------------- validation


def test_clean_dataset_has_no_problems(tmp_path):
    fx = write_lumen_root(tmp_path / "clean", 6, extra_columns=True)
    for deep in (False, True):
        report = validation.validate_roots([fx.root], deep=deep)
        assert report.ok, report.format()
        assert report.n_images == 24 and len(report.locations) == 6
        assert "no problems" in report.summary()


@pytest.mark.parametrize("fault", sorted(set(FAULTS) - DEEP_ONLY))
def test_each_planted_fault_is_reported_by_uuid_and_file(faulty, faulty_reports, fault):
    report = faulty_reports[0]
    uuid = faulty.faults[fault]
    mine = [p for p in report.problems if p.uuid == uuid]
    assert [p.kind for p in mine] == [FAULTS[fault]], report.format()
    problem = mine[0]
    assert uuid in problem.message
    assert problem.file in problem.message or problem.kind == "duplicate_uuid"
    if FAULTS[fault] in {"missing_folder", "nan_coordinate", "swapped_coordinates", "outside_croatia", "bad_uuid"}:
        assert problem.file == str(faulty.root / "data.csv")
        assert " line " in problem.message
    if FAULTS[fault] in {"truncated_image", "unreadable_image", "unexpected_mode", "unexpected_size", "missing_image"}:
        assert problem.file.endswith(".jpg") and uuid in problem.file


def test_good_locations_have_no_problems_and_every_fault_is_found(faulty, faulty_reports):
    header, deep = faulty_reports
    for uuid in faulty.uuids:
        assert uuid not in header.bad_uuids()
    assert set(faulty.faults.values()) - {faulty.faults["corrupt_data"]} == header.bad_uuids()
    assert set(faulty.faults.values()) == deep.bad_uuids()
    assert header.clean_locations()["uuid"].tolist() == [*faulty.uuids, faulty.faults["corrupt_data"]]
    assert deep.clean_locations()["uuid"].tolist() == faulty.uuids
    assert "affecting" in header.summary()


def test_corrupt_scan_data_is_found_only_by_a_deep_check(faulty, faulty_reports):
    header, deep = faulty_reports
    uuid = faulty.faults["corrupt_data"]
    assert uuid not in header.bad_uuids()
    kinds = [p.kind for p in deep.problems if p.uuid == uuid]
    assert kinds == ["unreadable_image"]
    assert [p.file for p in deep.problems if p.uuid == uuid] == [str(faulty.image_dir / uuid / "180.jpg")]


def test_duplicate_rows_list_both_lines(faulty, faulty_reports):
    problem = next(p for p in faulty_reports[0].problems if p.kind == "duplicate_uuid")
    assert "appears 2 times" in problem.message and "lines" in problem.message


def test_path_traversal_uuid_is_refused(faulty, faulty_reports, tmp_path):
    problem = next(p for p in faulty_reports[0].problems if p.kind == "bad_uuid")
    assert problem.uuid == "../../etc" and "data.csv line" in problem.message
    assert "../../etc" not in faulty_reports[0].locations["uuid"].tolist()
    with pytest.raises(DataError, match=r"refusing uuid '\.\./\.\./etc'"):
        reader.view_paths(faulty.image_dir, "../../etc")
    for bad in ("..", ".", "/etc", "a/b", "a\\b", "", " x", "\x00"):
        assert not reader.is_safe_uuid(bad)
    assert reader.is_safe_uuid("2a4d4844-15ea-4845-b206-97df98803cae")
    # a strict load refuses the whole dataset, naming the CSV and the row
    with pytest.raises(DataError, match=r"data\.csv line \d+: uuid '\.\./\.\./etc'"):
        loading.load_locations([faulty.root])


def test_symlinked_folder_pointing_outside_is_refused(tmp_path):
    fx = write_lumen_root(tmp_path / "r", 2)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    uuid = fx.uuids[1]
    target = fx.image_dir / uuid
    target.rename(outside / uuid)
    os.symlink(outside / uuid, target)
    report = validation.validate_roots([fx.root])
    kinds = {(p.uuid, p.kind) for p in report.problems}
    assert (uuid, "outside_root") in kinds  # a link out of the root, named as such (it is no bad name)
    assert "outside" in next(p.message for p in report.problems if p.kind == "outside_root")


def test_duplicate_uuid_across_roots(tmp_path):
    a = write_lumen_root(tmp_path / "a", 2, seed=1)
    b = write_lumen_root(tmp_path / "b", 2, seed=1)  # same seed: same uuids
    report = validation.validate_roots([a.root, b.root])
    duplicates = [p for p in report.problems if p.kind == "duplicate_uuid"]
    assert sorted(p.uuid for p in duplicates) == sorted(a.uuids)
    assert str(a.root) in duplicates[0].message and str(b.root) in duplicates[0].message


def test_stray_files_are_reported_and_hidden_files_ignored(tmp_path):
    fx = write_lumen_root(tmp_path / "r", 2)
    (fx.image_dir / "notes.txt").write_text("hello")
    (fx.image_dir / ".DS_Store").write_bytes(b"\0")
    (fx.image_dir / fx.uuids[0] / ".DS_Store").write_bytes(b"\0")
    (fx.image_dir / fx.uuids[0] / "readme.txt").write_text("x")
    report = validation.validate_roots([fx.root])
    assert sorted((p.uuid, p.kind) for p in report.problems) == sorted(
        [("", "extra_file"), (fx.uuids[0], "extra_file")]
    )


def test_expected_size_mode_and_pixel_cap(tmp_path):
    fx = write_lumen_root(tmp_path / "r", 2, image_size=32)
    report = validation.validate_roots([fx.root], expected_size=(640, 640))
    assert {p.kind for p in report.problems} == {"unexpected_size"} and len(report.problems) == 8
    assert "expected 640x640" in report.problems[0].message
    report = validation.validate_roots([fx.root], expected_mode="L")
    assert {p.kind for p in report.problems} == {"unexpected_mode"}
    report = validation.validate_roots([fx.root], max_pixels=32 * 32 - 1)
    assert {p.kind for p in report.problems} == {"image_too_large"}
    assert "decompression bomb" in report.problems[0].message


def test_png_named_jpg_is_flagged(tmp_path):
    fx = write_lumen_root(tmp_path / "r", 2)
    path = fx.image_dir / fx.uuids[0] / "0.jpg"
    Image.open(path).save(path, format="PNG")
    report = validation.validate_roots([fx.root])
    assert [(p.kind, p.file) for p in report.problems] == [("not_jpeg", str(path))]


def test_coast_tolerance_accepts_seaside_points_but_not_open_sea(tmp_path):
    from geoguess_utils.geo import borders

    fx = write_lumen_root(tmp_path / "r", 3)
    frame = pd.read_csv(fx.root / "data.csv", index_col=0)
    # Split's waterfront is outside Natural Earth's coarse coastline, yet a real road
    seaside = (43.5045, 16.4330)
    assert not borders.is_on_land(*seaside, "full")
    frame.loc[0, ["latitude", "longitude"]] = seaside
    frame.loc[1, ["latitude", "longitude"]] = (43.0, 15.0)  # open Adriatic
    frame.to_csv(fx.root / "data.csv")
    report = validation.validate_roots([fx.root])
    assert [(p.uuid, p.kind) for p in report.problems] == [(fx.uuids[1], "outside_croatia")]
    assert validation.validate_roots([fx.root], coast_tolerance_km=0.0).bad_uuids() == {fx.uuids[0], fx.uuids[1]}


def test_non_numeric_coordinate_text_is_quoted(tmp_path):
    fx = write_lumen_root(tmp_path / "r", 2)
    frame = pd.read_csv(fx.root / "data.csv", index_col=0, dtype=str)
    frame.loc[1, "longitude"] = "16,5"
    frame.to_csv(fx.root / "data.csv")
    report = validation.validate_roots([fx.root])
    assert [p.kind for p in report.problems] == ["nan_coordinate"]
    assert "longitude '16,5'" in report.problems[0].message and "line 3" in report.problems[0].message


# ----------------------------------------------------------------------------- strict and lenient


def test_strict_load_lists_every_problem(faulty, tmp_path):
    report_path = tmp_path / "problems.csv"
    with pytest.raises(DataError) as info:
        loading.load_locations([faulty.root], report_path=report_path)
    message = str(info.value)
    for fault, uuid in faulty.faults.items():
        if fault not in DEEP_ONLY:
            assert uuid in message, fault
    assert report_path.is_file()


def test_lenient_load_skips_bad_locations_and_reports_exactly_what_and_why(faulty, tmp_path):
    report_path = tmp_path / "skipped.csv"
    with pytest.warns(UserWarning, match="skipped"):
        table = loading.load_locations([faulty.root], lenient=True, report_path=report_path, deep=True)
    assert table["uuid"].tolist() == faulty.uuids
    written = pd.read_csv(report_path, dtype=str, keep_default_na=False)
    assert list(written.columns) == list(validation.REPORT_COLUMNS)
    expected = {(u, FAULTS[f]) for f, u in faulty.faults.items()}
    assert set(zip(written["uuid"], written["kind"], strict=True)) == expected
    assert len(written) == len(expected)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


def test_lenient_without_report_path_warns_with_the_full_list(faulty):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loading.load_locations([faulty.root], lenient=True)
    text = "\n".join(str(w.message) for w in caught)
    for fault, uuid in faulty.faults.items():
        if fault not in DEEP_ONLY:
            assert uuid in text


# ----------------------------------------------------------------------------- command line


def test_cli_validate_lists_faults_and_exits_nonzero(faulty, capsys):
    status = cli.main(["validate", str(faulty.root)])
    out = capsys.readouterr().out
    assert status == 1
    for fault, uuid in faulty.faults.items():
        if fault not in DEEP_ONLY:
            assert uuid in out, fault
    assert faulty.faults["corrupt_data"] not in out
    assert cli.main(["validate", "--deep", str(faulty.root)]) == 1
    assert faulty.faults["corrupt_data"] in capsys.readouterr().out


def test_cli_validate_passes_on_clean_data(tmp_path, capsys):
    a = write_lumen_root(tmp_path / "a", 3, seed=1)
    b = write_lumen_root(tmp_path / "b", 3, layout="images", extra_columns=True, seed=2)
    assert cli.main(["validate", str(a.root), str(b.root)]) == 0
    assert "no problems" in capsys.readouterr().out


def test_cli_validate_lenient_writes_report(faulty, tmp_path, capsys):
    assert cli.main(["validate", "--lenient", str(faulty.root)]) == 2  # needs --report
    assert "--report" in capsys.readouterr().err
    report = tmp_path / "report.csv"
    assert cli.main(["validate", "--lenient", "--report", str(report), str(faulty.root)]) == 0
    assert "would be skipped" in capsys.readouterr().out
    written = pd.read_csv(report, dtype=str, keep_default_na=False)
    assert set(written["uuid"]) == {u for f, u in faulty.faults.items() if f not in DEEP_ONLY}


def test_validation_reads_only_headers_and_checks_land_once(tmp_path, monkeypatch):
    """A header check of 1,000 folders opens each view once, decodes none, and tests land in one call.

    The work is counted rather than timed: one listing per folder, one header per view,
    no pixel decoding and one vectorised land test for all rows is what keeps 16,000
    folders a matter of seconds, however busy the machine.
    """
    root = tmp_path / "many"
    fx = write_lumen_root(root, 1, image_size=16)
    views = {h: (fx.image_dir / fx.uuids[0] / f"{h}.jpg").read_bytes() for h in layout.HEADINGS}
    rows = [(fx.uuids[0], fx.latitude[0], fx.longitude[0])]
    for i in range(999):
        uuid = f"00000000-0000-4000-8000-{i:012d}"
        folder = fx.image_dir / uuid
        folder.mkdir()
        for heading, data in views.items():
            (folder / f"{heading}.jpg").write_bytes(data)
        rows.append((uuid, fx.latitude[0], fx.longitude[0]))
    pd.DataFrame(rows, columns=["uuid", "latitude", "longitude"]).to_csv(root / "data.csv")

    from geoguess_utils.geo import borders

    calls: dict[str, int] = {"listdir": 0, "open": 0, "load": 0, "land": 0, "land_points": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        return wrapper

    real_land = borders.is_on_land

    def counting_land(lat, lon, *args, **kwargs):
        calls["land"] += 1
        calls["land_points"] += len(lat)
        return real_land(lat, lon, *args, **kwargs)

    real_listdir = os.listdir

    def counting_listdir(path="."):
        calls["listdir"] += Path(path).parent == fx.image_dir  # only location folders are counted
        return real_listdir(path)

    monkeypatch.setattr(validation.os, "listdir", counting_listdir)
    monkeypatch.setattr(Image, "open", counting("open", Image.open))
    monkeypatch.setattr(Image.Image, "load", counting("load", Image.Image.load))
    monkeypatch.setattr(borders, "is_on_land", counting_land)
    report = validation.validate_roots([root], workers=1)
    assert report.ok and report.n_images == 4000
    assert calls["listdir"] == 1000  # one listing per location folder
    assert calls["open"] == 4000  # one header read per view
    assert calls["load"] == 0  # no pixels decoded without deep=True
    assert (calls["land"], calls["land_points"]) == (1, 1000)  # all rows in one vectorised call
