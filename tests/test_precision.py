from geoguess_utils import precision


def test_flags_drive_the_bf16_choice(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert precision.cpu_has_native_bf16()
    assert precision.auto_precision("cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
    assert not precision.cpu_has_native_bf16()
    assert precision.auto_precision("cpu") == "32-true"


def test_describe_device_names_something():
    text = precision.describe_device()
    assert text.startswith("CPU") or "CUDA" in text
