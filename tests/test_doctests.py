"""Every docstring example of the package runs and shows what it says.

The examples are found with :mod:`doctest` in every module of ``art_denoise`` (one test
per docstring), so they run under ``--import-mode=importlib`` with the rest of the suite.
Importing a module must do nothing but define things: the command-line modules included.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import subprocess
import sys
from typing import Any

import pytest
import torch

import art_denoise

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    found = pkgutil.walk_packages(art_denoise.__path__, prefix="art_denoise.")
    return ["art_denoise", *sorted(m.name for m in found)]


def _docstring_examples() -> list[Any]:
    finder = doctest.DocTestFinder()
    params = []
    for name in _module_names():
        for test in finder.find(importlib.import_module(name), name):
            if test.examples:
                params.append(pytest.param(test, id=test.name))
    return params


@pytest.mark.parametrize("test", _docstring_examples())
def test_docstring_example(test: doctest.DocTest) -> None:
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    result = runner.run(test, out=report.append)
    assert result.failed == 0, "".join(report)


def test_importing_every_module_runs_nothing() -> None:
    names = _module_names()
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *names], capture_output=True, text=True, check=True
    )
    assert done.stdout == ""
