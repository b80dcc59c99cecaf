"""The native attacks are torch only: no attack library, nothing above the ground floor."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import art_denoise.attacks.native as native

ALLOWED_PACKAGES = ("torch", "numpy")
ALLOWED_OWN = ("art_denoise._torch", "art_denoise._validation", "art_denoise.attacks.native")


def _imported(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            found.add(node.module or "")
    return found


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in ALLOWED_PACKAGES:
        return True
    return any(module == own or module.startswith(own + ".") for own in ALLOWED_OWN)


def test_native_attacks_import_only_torch_numpy_and_the_ground_floor() -> None:
    files = sorted(Path(native.__file__).parent.glob("*.py"))
    assert len(files) >= 3
    for path in files:
        bad = sorted(m for m in _imported(path) if not _allowed(m))
        assert not bad, f"{path.name} imports {bad}"
