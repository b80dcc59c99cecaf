"""Every tutorial in notebooks/ runs top to bottom in a real Jupyter kernel (nbclient).

The notebooks carry their own assertions (every number they show is checked); a failing
assertion fails the cell and so the test. They are committed without outputs. The kernel
is a fresh ``python3`` process that inherits this process's environment: ``PYTHONPATH``
puts this checkout (and the plugins' sources) first, so the kernel imports the
``art_denoise`` under test, and ``MPLBACKEND=Agg`` keeps matplotlib off any display.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: Notebooks that take minutes on a loaded 2-core machine (none today: the six take 10-40 s
#: each there); a name here moves its notebook to the slow suite.
SLOW: set[str] = set()
#: Seconds a cell may take (a loaded CI machine is several times slower than a laptop).
CELL_TIMEOUT = 900


def _params() -> list[object]:
    return [
        pytest.param(p, id=p.name, marks=[pytest.mark.slow] if p.name in SLOW else [])
        for p in NOTEBOOKS
    ]


def _source_paths() -> list[str]:
    """This checkout and the plugins' sources, as PYTHONPATH entries."""
    plugins = sorted(str(p) for p in (ROOT / "plugins").glob("*/src") if p.is_dir())
    return [str(ROOT), *plugins]


def _kernel_environment(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """The environment the kernel inherits: this checkout first on PYTHONPATH, Agg, cwd."""
    previous = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([*_source_paths(), *([previous] if previous else [])])
    )
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # One thread unless told otherwise: on a shared, loaded machine two OpenMP threads
    # waiting for each other made the same training epoch 5-50x slower.
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.chdir(cwd)


@pytest.mark.parametrize("path", _params())
def test_notebook_runs_in_a_kernel(path: Path, monkeypatch, tmp_path) -> None:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name} cell {i} is committed with outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has a count"
    _kernel_environment(monkeypatch, tmp_path)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError naming the cell that failed


def test_the_kernel_imports_this_checkout(monkeypatch, tmp_path) -> None:
    """The kernel sees this checkout's art_denoise, not another installed copy."""
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("import art_denoise\nprint(art_denoise.__file__)"))
    _kernel_environment(monkeypatch, tmp_path)
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert Path(printed.strip()).resolve() == (ROOT / "art_denoise" / "__init__.py").resolve()


def test_there_are_the_tutorials() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {
        "01_quickstart.ipynb",
        "02_honest_evaluation.ipynb",
        "03_denoising_blocks.ipynb",
        "04_blurnet_and_rp2.ipynb",
        "05_randomised_defenses.ipynb",
        "06_robust_training_in_art.ipynb",
    } <= names
