from geoguess_utils import accel


def test_flags_drive_the_bf16_choice(monkeypatch):
    monkeypatch.setattr(accel, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert accel.cpu_has_native_bf16()
    assert accel.auto_precision("cpu") == "bf16-mixed"
    monkeypatch.setattr(accel, "cpu_flags", lambda: frozenset({"avx2"}))
    assert not accel.cpu_has_native_bf16()
    assert accel.auto_precision("cpu") == "32-true"


def test_describe_device_names_something():
    text = accel.describe_device()
    assert text.startswith("CPU") or "CUDA" in text
