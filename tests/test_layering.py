"""The package's floors: no import cycle between its parts, and a torch layer without ART.

Every ``import`` in every module counts, at module level or inside a function (STYLE.md:
"a lower floor never names a higher one, not even inside a function"). A part is the first
name under ``art_denoise`` (``models``, ``blocks``, ``_torch``, ...); the ART-facing
subpackage ``attacks.evasion`` is a part of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "art_denoise"

#: Subpackages that are a floor of their own although they sit inside another folder.
OWN_PARTS = ("attacks.evasion",)

#: The torch layer: these parts never import ART, an attack library or the command line.
TORCH_LAYER = (
    "_files",
    "_torch",
    "_validation",
    "autoencoder",
    "blocks",
    "blurnet",
    "data",
    "filters",
    "models",
    "spectral",
    "training",
    "visualize",
)
FOREIGN = ("art", "torchattacks", "foolbox")


def _part(module: str) -> str | None:
    """``art_denoise.a.b.c`` -> its part (``a``, or ``a.b`` for :data:`OWN_PARTS`)."""
    names = module.split(".")
    if names[0] != "art_denoise" or len(names) < 2:
        return None
    two = ".".join(names[1:3])
    return two if two in OWN_PARTS else names[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def _type_only(tree: ast.AST) -> set[ast.AST]:
    """The import statements inside ``if TYPE_CHECKING:`` blocks (never run)."""
    found: set[ast.AST] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        name = getattr(test, "id", None) or getattr(test, "attr", None)
        if isinstance(node, ast.If) and name == "TYPE_CHECKING":
            for stmt in node.body:
                found.update(
                    n for n in ast.walk(stmt) if isinstance(n, ast.Import | ast.ImportFrom)
                )
    return found


def _imports(path: Path, source: str | None = None, *, runtime_only: bool = False) -> set[str]:
    """Every module an ``import`` statement anywhere in the file names (relative resolved).

    ``runtime_only`` leaves out the imports under ``if TYPE_CHECKING:`` (annotations only).
    """
    tree = ast.parse(path.read_text(encoding="utf-8") if source is None else source)
    skip = _type_only(tree) if runtime_only else set()
    here = _module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if node in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(here[: len(here) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        src = _part(_module_name(path))
        if src is None:
            continue
        targets = {_part(m) for m in _imports(path)} - {None, src}
        graph.setdefault(src, set()).update(t for t in targets if t is not None)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or ``None``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_function_level_and_relative_imports_count() -> None:
    source = "def f():\n    from art_denoise.cli import main\n    from ..blocks import insert\n"
    imports = _imports(PACKAGE / "models" / "probe.py", source)
    assert {"art_denoise.cli", "art_denoise.blocks", "art_denoise.blocks.insert"} <= imports
    assert {_part(m) for m in imports} == {"cli", "blocks"}
    typed = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from art_denoise.cli import x\n"
    )
    assert "art_denoise.cli" in _imports(PACKAGE / "models" / "probe.py", typed)
    assert "art_denoise.cli" not in _imports(
        PACKAGE / "models" / "probe.py", typed, runtime_only=True
    )


def test_no_import_cycle_between_modules() -> None:
    """File by file, counting what runs (a renderer may name the types it draws for
    annotations only); a package's ``__init__`` is its own node."""
    graph: dict[str, set[str]] = {}
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    for name, path in modules.items():
        imports = _imports(path, runtime_only=True)
        graph[name] = {m for m in imports if m in modules and m != name}
    inits = {n for n, p in modules.items() if p.name == "__init__.py"}
    # a package's __init__ hands on its modules' names: drop its edges into its own folder
    for name in inits:
        graph[name] = {m for m in graph[name] if not m.startswith(f"{name}.")}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_no_import_cycle_between_parts() -> None:
    graph = _graph()
    assert {"models", "blocks", "blurnet", "training", "evaluation", "cli"} <= set(graph)
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


@pytest.mark.parametrize("part", TORCH_LAYER)
def test_torch_layer_does_not_import_art_or_attack_libraries(part: str) -> None:
    paths = [PACKAGE / f"{part}.py"] if (PACKAGE / f"{part}.py").exists() else []
    paths += sorted((PACKAGE / part).rglob("*.py")) if (PACKAGE / part).is_dir() else []
    assert paths, part
    for path in paths:
        foreign = {m for m in _imports(path) if m.split(".")[0] in FOREIGN}
        assert not foreign, f"{path.relative_to(PACKAGE)} imports {sorted(foreign)}"


def test_models_do_not_name_their_plug_ins() -> None:
    """The bottom floor finds transforms through entry points, never by importing them."""
    graph = _graph()
    assert not graph["models"] & {"blocks", "blurnet"}
    assert not graph["_torch"] - {"_validation"}
