"""The functions of this checkout, importable side by side (every Chalice module is ``app.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parents[5]
FUNCTIONS_DIR: Final = REPO_ROOT / "functions"
EDGE_PROJECT: Final = FUNCTIONS_DIR / "edge_api"
ADMIN_PROJECT: Final = FUNCTIONS_DIR / "admin_api"


def load_app(project: Path, name: str, filename: str = "app.py") -> ModuleType:
    """Import a function's entry module (a Chalice project's ``app.py``, a consumer's
    ``handler.py``) under the unique module ``name`` (once per process)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, project / filename)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{project / filename} not found: run from a checkout of eventface")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
