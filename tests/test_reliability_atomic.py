"""Every file the package writes goes through the atomic writers of ``geoguess_utils.io``.

The source of the package is read (not imported) and every call that writes a file is
listed: ``open(..., "w")``, ``to_csv(path)``, ``np.save``, ``torch.save``, ``write_text``,
``write_bytes``, ``savefig(path)``, ``json.dump`` and the like. A call is fine inside a
``with atomic_path(...)`` block (it writes the temporary file that is then renamed),
when it writes to an in-memory buffer, or when it is listed below with the reason it
is safe. Anything else fails, naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "geoguess_utils"
WRITER_METHODS = {
    "write_text",
    "write_bytes",
    "to_csv",
    "to_parquet",
    "to_json",
    "to_file",
    "to_pickle",
    "to_feather",
    "savefig",
    "save",
    "tofile",
    "dump",
}
WRITER_FUNCTIONS = {("np", "save"), ("np", "savez"), ("np", "savez_compressed"), ("torch", "save"), ("json", "dump")}
BUFFER_NAMES = {"buffer", "buf", "stream"}

ALLOWED: dict[tuple[str, str], str] = {
    # (module, source of the call) -> why it is safe
    ("write.py", '(target / f"{heading}.jpg").write_bytes(encode_jpeg(picture, quality))'): (
        "images go to a hidden staging folder that is renamed into place in one os.replace"
    ),
}


def _is_atomic_block(node: ast.With) -> bool:
    for item in node.items:
        call = item.context_expr
        if isinstance(call, ast.Call):
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "atomic_path":
                return True
    return False


def _writes_to_memory(call: ast.Call) -> bool:
    if not call.args:
        return not any(k.arg in ("path", "path_or_buf", "fname", "file", "f") for k in call.keywords)
    first = call.args[0]
    if isinstance(first, ast.Name) and first.id in BUFFER_NAMES:
        return True
    return isinstance(first, ast.Call) and getattr(first.func, "attr", getattr(first.func, "id", "")) in (
        "BytesIO",
        "StringIO",
    )


def _open_mode_writes(call: ast.Call) -> bool:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    return isinstance(mode, ast.Constant) and isinstance(mode.value, str) and any(c in mode.value for c in "wax+")


def _file_writes(tree: ast.AST) -> list[ast.Call]:
    """Write calls that are not inside an ``atomic_path`` block and not into memory."""
    found: list[ast.Call] = []

    def visit(node: ast.AST, atomic: bool) -> None:
        if isinstance(node, ast.With) and _is_atomic_block(node):
            atomic = True
        if isinstance(node, ast.Call) and not atomic:
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open" and _open_mode_writes(node):
                found.append(node)
            elif isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else None
                writes = (owner, func.attr) in WRITER_FUNCTIONS
                writes |= func.attr in WRITER_METHODS and not _writes_to_memory(node)
                writes |= func.attr == "open" and _open_mode_writes(node)
                if writes:
                    found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child, atomic)

    visit(tree, False)
    return found


def test_every_file_write_in_the_package_is_atomic():
    offending = []
    used = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "io.py" and path.parent == PACKAGE:
            continue  # the atomic writers themselves
        source = path.read_text()
        for call in _file_writes(ast.parse(source)):
            text = ast.get_source_segment(source, call) or ""
            key = (path.name, text)
            if key in ALLOWED:
                used.add(key)
                continue
            offending.append(f"{path.relative_to(PACKAGE.parent)}:{call.lineno}: {text}")
    assert not offending, (
        "these calls write files directly; use geoguess_utils.io.atomic_write_bytes/_text/_csv or "
        "atomic_path (temporary file + rename), or allow them here with the reason:\n" + "\n".join(offending)
    )
    assert used == set(ALLOWED), f"allowed writes that no longer exist: {set(ALLOWED) - used}"


def test_the_audit_finds_direct_writes():
    """The checker itself: each kind of direct write is caught, the atomic forms are not."""
    caught = """
import json, numpy as np, torch
def f(df, path, fig, arr, obj, p):
    open(path, "w").write("x")
    df.to_csv(path)
    np.save(path, arr)
    torch.save(obj, path)
    p.write_text("x")
    p.write_bytes(b"x")
    fig.savefig(path)
    json.dump(obj, open(path, "w"))
    p.open(mode="a")
"""
    fine = """
import io
from geoguess_utils.io import atomic_path
def f(df, path, fig, obj, image):
    with atomic_path(path) as tmp:
        df.to_csv(tmp)
        tmp.write_bytes(b"x")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    image.save(buffer, format="JPEG")
    text = df.to_csv(index=False)
    open(path).read()
    open(path, "rb").read()
"""
    assert len(_file_writes(ast.parse(caught))) == 10
    assert _file_writes(ast.parse(fine)) == []
