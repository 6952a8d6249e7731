"""Package namespaces that import their modules on first use (``import geoguess_utils.x`` stays cheap)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_namespace(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__`` (PEP 562).

    ``package.name`` imports the module that defines ``name`` only when it is first used;
    a submodule's own name (``package.submodule``) works the same way.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> submodule (relative to the package) that defines it.

    Returns:
        ``(__getattr__, __dir__)`` to assign at the package's top level.
    """

    def module_getattr(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    def module_dir() -> list[str]:
        return sorted(exports)

    return module_getattr, module_dir
