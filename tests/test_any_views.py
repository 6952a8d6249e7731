"""Any one to four views: masked fusion, view dropout, missing views in datasets, loose photos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from _lumen_fixtures import write_lumen_root
from _training_helpers import fit_args, make_dataset, use_tiny_backbone

from geoguess_utils import cli
from geoguess_utils.data import geodataset, validation
from geoguess_utils.errors import ConfigError
from geoguess_utils.models import multiview
from geoguess_utils.models.view_attention import ViewAttention
from geoguess_utils.tasks.loading import load_task
from geoguess_utils.tasks.view_dropout import drop_views, hide_headings

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MASKS = torch.tensor([[True, False, True, False], [False, False, False, True], [True, True, True, True]])


def _fills(features: torch.Tensor) -> list[torch.Tensor]:
    """The same features with the absent slots of :data:`MASKS` holding zeros, noise, huge values and NaN."""
    out = []
    for fill in (0.0, 1e6, float("nan")):
        filled = features.clone()
        filled[~MASKS] = fill
        out.append(filled)
    noisy = features.clone()
    noisy[~MASKS] = torch.randn_like(noisy)[~MASKS] * 50
    return [*out, noisy]


@pytest.mark.parametrize("pooling", ["attention", "mean"])
def test_a_location_with_views_missing_gets_one_answer_whatever_fills_the_missing_slots(pooling):
    torch.manual_seed(0)
    top = multiview.FusionHead(pooling, 4, 12, 5, 0, 0.0, (16, 2, 2)).eval()
    known = torch.tensor([[True, True, False, True], [True, True, True, True], [False, True, True, True]])
    features = torch.randn(3, 4, 12)
    with torch.no_grad():
        answers = [top(filled, MASKS, known) for filled in _fills(features)]
        for answer in answers[1:]:
            torch.testing.assert_close(answer, answers[0], rtol=1e-5, atol=1e-5)
        assert torch.isfinite(answers[0]).all()
        # the views that are there do count: change one present view and the answer moves
        moved = features.clone()
        moved[0, 0] += 3.0
        assert not torch.allclose(top(moved, MASKS, known)[0], answers[0][0], atol=1e-4)
        # a full mask is the plain four-view answer
        torch.testing.assert_close(top(features, torch.ones(3, 4, dtype=torch.bool)), top(features))


def test_mean_pooling_is_the_mean_of_the_views_present():
    features = torch.randn(3, 4, 6)
    fused = multiview.fuse_views("mean", None, features, MASKS)
    expected = torch.stack([features[i][MASKS[i]].mean(dim=0) for i in range(3)])
    torch.testing.assert_close(fused, expected)


def test_unknown_heading_uses_its_own_embedding():
    torch.manual_seed(1)
    fusion = ViewAttention(10, d_model=8, num_heads=2, num_layers=1).eval()
    with torch.no_grad():
        fusion.unknown_heading.normal_()
        features = torch.randn(2, 4, 10)
        unknown = torch.zeros(2, 4, dtype=torch.bool)
        known = torch.ones(2, 4, dtype=torch.bool)
        assert not torch.allclose(fusion(features, None, unknown), fusion(features, None, known), atol=1e-4)
        # with every heading unknown, the order of the photos does not matter
        rotated = features[:, [2, 3, 0, 1]]
        torch.testing.assert_close(
            fusion(rotated, None, unknown), fusion(features, None, unknown), rtol=1e-4, atol=1e-5
        )


def test_concat_refuses_missing_views_and_unknown_headings_and_nothing_takes_no_view():
    features = torch.randn(3, 4, 5)
    with pytest.raises(ConfigError, match="needs all four"):
        multiview.fuse_views("concat", None, features, MASKS)
    with pytest.raises(ConfigError, match="needs all four"):
        multiview.fuse_views("concat", None, features, None, torch.zeros(3, 4, dtype=torch.bool))
    assert multiview.fuse_views("concat", None, features, torch.ones(3, 4, dtype=torch.bool)).shape == (3, 20)
    empty = MASKS.clone()
    empty[1] = False
    with pytest.raises(ValueError, match="location 1 of the batch has no view"):
        multiview.fuse_views("mean", None, features, empty)


def test_an_attention_state_saved_before_the_unknown_heading_loads():
    fusion = ViewAttention(10, d_model=8, num_heads=2, num_layers=1)
    state = {k: v for k, v in fusion.state_dict().items() if k != "unknown_heading"}
    fresh = ViewAttention(10, d_model=8, num_heads=2, num_layers=1)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.unknown_heading.detach(), state["heading"].mean(dim=0))


def test_view_dropout_keeps_at_least_one_present_view_and_drops_at_the_rate_asked():
    generator = torch.Generator().manual_seed(3)
    present = torch.rand(4000, 4, generator=generator) > 0.3
    present[present.sum(dim=1) == 0, 0] = True
    kept = drop_views(present, 0.5, generator)
    assert not (kept & ~present).any(), "a view that was not there was kept"
    assert kept.any(dim=1).all(), "a location lost every view"
    rate = 1 - kept.sum() / present.sum()
    assert 0.4 < float(rate) < 0.5  # 0.5, less the views kept so that no location is left empty
    assert torch.equal(drop_views(present, 0.0), present)
    known = hide_headings(kept, 0.25, generator)
    hidden = kept & ~known
    assert 0.2 < float(hidden.sum() / kept.sum()) < 0.3
    assert known[~kept].all(), "only present views have their heading hidden"


def test_validate_reports_a_missing_view_as_a_warning_unless_four_are_required(tmp_path):
    fx = write_lumen_root(tmp_path / "root", 3, image_size=16, faults=("missing_view", "missing_image"), seed=4)
    report = validation.validate_roots([fx.root])
    short, empty = fx.faults["missing_view"], fx.faults["missing_image"]
    assert [w.kind for w in report.warnings] == ["missing_view"] and report.warnings[0].uuid == short
    assert report.bad_uuids() == {empty}, "a folder without any view is a problem"
    row = report.locations.set_index("uuid").loc[short]
    assert row["path_90"] == "" and row["path_0"].endswith("0.jpg")
    assert "1 locations have fewer than four views" in report.summary()
    strict = validation.validate_roots([fx.root], require_four_views=True)
    assert strict.bad_uuids() == {short, empty} and not strict.warnings
    assert cli.main(["validate", str(fx.root)]) == 1  # the empty folder
    shutil.rmtree(fx.image_dir / empty)
    assert cli.main(["validate", str(fx.root), "--lenient", "--report", str(tmp_path / "r.csv")]) == 0


def test_the_dataset_marks_missing_views_and_black_pixels_stand_in(tmp_path):
    fx = write_lumen_root(tmp_path / "root", 3, image_size=16, faults=("missing_view",), seed=5)
    report = validation.validate_roots([fx.root])
    dataset = geodataset.GeoDataset(report.locations, image_size=8)
    index = report.locations["uuid"].tolist().index(fx.faults["missing_view"])
    sample = dataset[index]
    assert sample["view_mask"].tolist() == [True, False, True, True]
    assert dataset[0]["view_mask"].all() or index == 0


@pytest.fixture(scope="module")
def trained_any_views(tmp_path_factory):
    """A tiny attention classifier trained with view dropout on a root where one location has two views."""
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        work = tmp_path_factory.mktemp("any_views")
        root = make_dataset(work / "root", 40, size=32, seed=22)
        folders = sorted(p for p in (root / "images").iterdir() if p.is_dir())
        for name in ("90.jpg", "270.jpg"):
            (folders[0] / name).unlink()
        old = Path.cwd()
        os.chdir(work)
        try:
            extra = ("--model.init_args.view_dropout", "0.5", "--model.init_args.heading_dropout", "0.3")
            extra += ("--trainer.logger", "false")
            with pytest.warns(UserWarning, match="1 locations have fewer than four views"):
                assert cli.main(["fit", *fit_args(root, work, *extra, epochs=1)]) == 0
        finally:
            os.chdir(old)
        ckpt = next(work.rglob("last.ckpt"))
        yield ckpt, root, folders[0]


def test_training_with_view_dropout_and_predicting_locations_with_fewer_views(trained_any_views, tmp_path, capsys):
    ckpt, root, _ = trained_any_views
    task = load_task(ckpt)
    assert task.view_dropout == 0.5 and task.heading_dropout == 0.3
    out = tmp_path / "pred.csv"
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        assert cli.main(["predict", "--ckpt", str(ckpt), "--data", str(root), "--out", str(out)]) == 0
    assert "1 with fewer than four views" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 41


def test_loose_photos_of_unknown_heading(trained_any_views, tmp_path, capsys):
    ckpt, _, short = trained_any_views
    photos = [short / "0.jpg", short / "180.jpg"]
    out = tmp_path / "one.csv"
    args = ["predict", "--ckpt", str(ckpt), *[a for p in photos for a in ("--photo", str(p))], "--out", str(out)]
    assert cli.main(args) == 0
    said = capsys.readouterr().out
    assert "from 2 photos of unknown heading" in said
    lat, lon = (float(v) for v in out.read_text().splitlines()[1].split(",")[1:])
    assert 42 < lat < 47 and 13 < lon < 20
    # the answer is the network's on exactly those photos in any order: unknown headings carry no order
    swapped = ["predict", "--ckpt", str(ckpt), "--photo", str(photos[1]), "--photo", str(photos[0])]
    assert cli.main(swapped) == 0
    assert f"{lat:.5f}, {lon:.5f}" in capsys.readouterr().out
    five = ["predict", "--ckpt", str(ckpt), *[a for _ in range(5) for a in ("--photo", str(photos[0]))]]
    assert cli.main(five) == 2
    assert "one to 4 photos" in capsys.readouterr().err
    before = [p.read_bytes() for p in photos]
    for target in photos:  # neither the photo given nor any other image is ever written over
        assert cli.main(["predict", "--ckpt", str(ckpt), "--photo", str(photos[0]), "--out", str(target)]) == 2
    assert [p.read_bytes() for p in photos] == before


def test_a_concat_model_refuses_loose_photos(tmp_path, capsys):
    from geoguess_utils.cells.context import GeoContext
    from geoguess_utils.inference.photos import predict_photos
    from geoguess_utils.tasks.classification import ClassificationTask

    with pytest.MonkeyPatch.context() as patch:
        use_tiny_backbone(patch)
        task = ClassificationTask(pooling="concat", pretrained=False)
        lat = np.array([45.8, 43.5, 45.3, 42.65])
        lon = np.array([15.97, 16.44, 18.0, 18.1])
        task.configure_context(GeoContext.fit(lat, lon), 16)
    with pytest.raises(ConfigError, match="cannot place photos of unknown heading"):
        predict_photos(task, [tmp_path / "a.jpg"])
    with pytest.raises(ConfigError, match="view_dropout"):
        ClassificationTask(pooling="concat", view_dropout=0.2)


def test_loose_photos_with_a_search_region(trained_any_views, tmp_path, capsys):
    ckpt, _, short = trained_any_views
    best = ckpt.with_name("best.ckpt")
    assert load_task(best).calibration is not None, "geoguess fit calibrates its best checkpoint"
    geojson = tmp_path / "region.geojson"
    args = ["predict", "--ckpt", str(best), "--photo", str(short / "0.jpg"), "--region", "0.9"]
    assert cli.main([*args, "--region-geojson", str(geojson), "--out", str(tmp_path / "p.csv")]) == 0
    assert "search region of 90%" in capsys.readouterr().out
    assert '"FeatureCollection"' in geojson.read_text()
    header = (tmp_path / "p.csv").read_text().splitlines()[0]
    assert header == "uuid,latitude,longitude,region_coverage,region_km2"


def test_the_views_benchmark_averages_every_subset_of_each_size():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import views

    masks = views.subset_masks(4)
    assert {size: len(subsets) for size, subsets in masks.items()} == {4: 1, 3: 4, 2: 6, 1: 4}
    assert all(len(set(subset)) == size for size, subsets in masks.items() for subset in subsets)
    # with mean fusion, one view alone and that view copied into all four slots are the same answer
    features = torch.randn(5, 4, 6)
    alone = multiview.fuse_views("mean", None, features, torch.tensor([[False, True, False, False]] * 5))
    copied = multiview.fuse_views("mean", None, features[:, 1:2].expand(-1, 4, -1))
    torch.testing.assert_close(alone, copied)
