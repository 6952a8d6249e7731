"""Views that must never be opened, and a server that answers only its own host names.

A FIFO blocks a reader for ever, a link to itself cannot be resolved, and a link of a view
(or of its location folder) that leads out of the dataset would read and show another file.
Validation reports each without opening it, every command refuses them, and the server's
sample folder never serves them. Each test is bounded by a timeout: a regression hangs no run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geoguess_utils import cli
from geoguess_utils.data import layout, validation
from geoguess_utils.data.view_files import view_file_problem
from geoguess_utils.serve.hosts import TrustedHosts, default_allowed_hosts, host_name
from geoguess_utils.serve.sample import SampleRoot

fastapi_testclient = pytest.importorskip("fastapi.testclient")


def _location(folder: Path, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for heading in layout.HEADINGS:
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{heading}.jpg")


@pytest.fixture
def hostile(tmp_path) -> tuple[Path, Path]:
    """A root whose locations hold a FIFO, a self-link, a link out and a folder linked out; and the secret."""
    root = tmp_path / "root"
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:not for the page\n")
    outside = tmp_path / "outside"
    _location(outside / "folder", 9)
    names = ["good0", "good1", "good2", "fifo", "loop", "linkout", "folderout"]
    for i, name in enumerate(names[:-1]):
        _location(root / "images" / name, i)
    (root / "images" / "fifo" / "90.jpg").unlink()
    os.mkfifo(root / "images" / "fifo" / "90.jpg")
    loop = root / "images" / "loop" / "180.jpg"
    loop.unlink()
    loop.symlink_to(loop)
    out = root / "images" / "linkout" / "0.jpg"
    out.unlink()
    out.symlink_to(secret)
    (root / "images" / "folderout").symlink_to(outside / "folder", target_is_directory=True)
    rows = [(n, 45.80 + 0.01 * i, 15.97) for i, n in enumerate(names)]
    pd.DataFrame(rows, columns=["uuid", "latitude", "longitude"]).to_csv(root / "data.csv", index=False)
    return root, secret


@pytest.mark.timeout(60)
def test_each_unreadable_view_is_named_without_being_opened(hostile):
    root, _ = hostile
    images = root / "images"
    assert view_file_problem(images / "good0" / "0.jpg", images) is None
    assert view_file_problem(images / "fifo" / "90.jpg", images)[0] == "not_a_file"
    assert "named pipe" in view_file_problem(images / "fifo" / "90.jpg", images)[1]
    assert "loop" in view_file_problem(images / "loop" / "180.jpg", images)[1]
    assert view_file_problem(images / "linkout" / "0.jpg", images)[0] == "outside_root"
    assert view_file_problem(images / "folderout" / "0.jpg", images)[0] == "outside_root"
    report = validation.validate_roots([root])
    kinds = {(p.uuid, p.kind) for p in report.problems}
    assert {("fifo", "not_a_file"), ("loop", "not_a_file"), ("linkout", "outside_root")} <= kinds
    assert ("folderout", "outside_root") in kinds  # a whole location folder linked out of the root
    assert not any(p.uuid.startswith("good") for p in report.problems)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("command", ["validate", "predict"])
def test_commands_refuse_such_views_and_never_hang(command, hostile, tmp_path, capsys):
    root, secret = hostile
    if command == "validate":
        assert cli.main(["validate", str(root)]) == 1  # done, problems found
        err = capsys.readouterr()
        text = err.out + err.err
    else:
        from _reliability_helpers import tiny_task, write_checkpoint

        from geoguess_utils.cells.context import GeoContext
        from geoguess_utils.tasks.classification import ClassificationTask

        context = GeoContext.fit([45.8, 45.5, 43.5, 44.0], [15.97, 18.6, 16.4, 15.2], spacing_deg=1.0)
        ckpt = write_checkpoint(tiny_task(ClassificationTask, context), tmp_path / "model.ckpt")
        out = tmp_path / "predictions.csv"
        code = cli.main(["predict", "--ckpt", str(ckpt), "--data", str(root), "--out", str(out)])
        assert code == 2 and not out.exists()
        text = capsys.readouterr().err
    assert "named pipe" in text and "symbolic link loop" in text and str(secret) in text


@pytest.mark.timeout(60)
def test_the_sample_folder_serves_only_regular_files_inside_the_root(hostile, tmp_path):
    from geoguess_utils.serve.app import ServeConfig, create_app

    root, secret = hostile
    sample = SampleRoot(root)
    assert sample.uuids == ["good0", "good1", "good2"]  # the four hostile locations are never offered
    models = tmp_path / "models"
    models.mkdir()
    app = create_app(ServeConfig(models_dir=models, sample_dir=root))
    with fastapi_testclient.TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/sample/good0/0").status_code == 200
        for uuid, heading in (("linkout", 0), ("folderout", 0), ("fifo", 90), ("loop", 180)):
            response = client.get(f"/sample/{uuid}/{heading}")
            assert response.status_code == 404 and "root:x" not in response.text
        # a view replaced by a link out of the root after start-up is refused too
        view = root / "images" / "good1" / "0.jpg"
        view.unlink()
        view.symlink_to(secret)
        response = client.get("/sample/good1/0")
        assert response.status_code == 404 and "root:x" not in response.text


def test_host_names_are_read_without_ports():
    assert host_name("127.0.0.1:8000") == "127.0.0.1"
    assert host_name("[::1]:8000") == "::1" and host_name("::1") == "::1"
    assert host_name("LocalHost") == "localhost"
    assert default_allowed_hosts("127.0.0.1") == ("127.0.0.1", "localhost", "::1")
    assert "geo.example" in default_allowed_hosts("geo.example")
    assert default_allowed_hosts("0.0.0.0") is None


def test_requests_for_another_host_name_are_refused(tmp_path):
    from geoguess_utils.serve.app import ServeConfig, create_app

    models = tmp_path / "models"
    models.mkdir()
    app = create_app(ServeConfig(models_dir=models, allowed_hosts=default_allowed_hosts("127.0.0.1")))
    with fastapi_testclient.TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"host": "localhost:8000"}).status_code == 200
        refused = client.get("/health", headers={"host": "attacker.example"})
        assert refused.status_code == 400
        assert refused.json()["error"]["field"] == "host" and "attacker.example" in refused.json()["error"]["message"]
    assert app.user_middleware[0].cls is TrustedHosts  # the outermost layer: no route runs first


def test_a_photo_that_does_not_decode_is_named_by_its_field_never_by_a_heap_address():
    from geoguess_utils.serve.uploads import NamedBuffer, Upload, decode_upload

    buffer = NamedBuffer(b"x", "field '0' (a.jpg)")
    assert repr(buffer) == str(buffer) == "field '0' (a.jpg)"
    from geoguess_utils.serve.uploads import UploadError

    with pytest.raises(UploadError) as caught:
        decode_upload(Upload("0", "a.jpg", "image/jpeg", b"GIF89a not really"), 32)
    assert "object at 0x" not in str(caught.value) and "field '0'" in str(caught.value)


def test_a_reloaded_checkpoint_frees_the_old_model(tmp_path):
    import gc

    from _serve_helpers import build_models, sample_uuids, view_bytes, view_fields

    from geoguess_utils.serve.app import ServeConfig, create_app

    sample, models = build_models(tmp_path / "served", locations=4)
    for name in ("junk.ckpt", "plain.ckpt", "notes.txt", "outside.ckpt", "reg.ckpt"):
        (models / name).unlink()
    checkpoint = models / "clf.ckpt"
    fields = view_fields(view_bytes(sample, sample_uuids(sample)[0]))
    app = create_app(ServeConfig(models_dir=models))
    with fastapi_testclient.TestClient(app) as client:
        for round_ in range(8):
            stamp = checkpoint.stat().st_mtime_ns + (round_ + 1) * 1_000_000_000
            os.utime(checkpoint, ns=(stamp, stamp))  # "a new version": the server loads it again
            assert client.post("/models/clf/predict", files=fields).status_code == 200
            assert client.get("/models/clf/cells").status_code == 200
            gc.collect()
            assert client.get("/health").json()["loaded"] == 1  # the replaced versions are gone


def test_a_refused_checkpoint_is_not_read_again_until_its_file_changes(tmp_path, monkeypatch):
    from geoguess_utils.checkpoints import files
    from geoguess_utils.serve.registry import ModelRegistry, ModelUnusableError

    models = tmp_path / "models"
    models.mkdir()
    junk = models / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint\n" * 20)
    reads = []
    real = files.load_checkpoint

    def counting(*args, **kwargs):
        reads.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "load_checkpoint", counting)
    registry = ModelRegistry(models, device="cpu")
    first = None
    for _ in range(5):
        with pytest.raises(ModelUnusableError, match="junk"):
            registry.get("junk")
        assert registry.catalogue()[1] and registry.catalogue()[1][0][0] == "junk"  # /health and /models
        first = len(reads) if first is None else first
        assert first > 0 and len(reads) == first  # read on the first request, never again
    junk.write_bytes(b"still not a checkpoint, but another file\n" * 20)
    with pytest.raises(ModelUnusableError):
        registry.get("junk")
    assert len(reads) > first  # a changed file is read again


def _png_declaring(width: int, height: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("L", (width, height), 0).save(buffer, format="PNG", optimize=True)  # black: compresses to little
    return buffer.getvalue()


@pytest.mark.timeout(120)
def test_many_small_files_declaring_large_images_are_refused_before_decoding(tmp_path, monkeypatch):
    import io
    import zipfile

    from _serve_helpers import build_models

    from geoguess_utils.serve import uploads
    from geoguess_utils.serve.app import ServeConfig, create_app

    _, models = build_models(tmp_path / "served", locations=4)
    photo = _png_declaring(2048, 2048)  # 4.2 MP each, about 4 KB on the wire
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for i in range(16):
            for heading in layout.HEADINGS:
                zipped.writestr(f"loc{i}/{heading}.jpg", photo)  # PNG bytes: the name decides nothing
    decoded = []
    real = uploads.decode_upload
    monkeypatch.setattr(uploads, "decode_upload", lambda *a, **k: decoded.append(1) or real(*a, **k))
    config = ServeConfig(models_dir=models, max_request_pixels=100_000_000)  # 64 photos x 4.2 MP = 268 MP
    with fastapi_testclient.TestClient(create_app(config)) as client:
        response = client.post(
            "/models/clf/predict-batch", files={"zip": ("many.zip", archive.getvalue(), "application/zip")}
        )
    assert response.status_code == 413, response.text
    assert "100 megapixels" in response.json()["error"]["message"]
    assert decoded == []  # refused from the headers alone
