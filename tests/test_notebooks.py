"""Every tutorial in notebooks/ runs top to bottom (its code cells, in order, in one namespace).

The notebooks carry their own assertions; they are committed without outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path, monkeypatch, tmp_path) -> None:
    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert not cell.get("outputs"), f"{path.name} cell {i} is committed with outputs"
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)


def test_there_is_a_notebook() -> None:
    assert NOTEBOOKS, "notebooks/ holds no tutorial"
