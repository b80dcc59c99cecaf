"""README.md keeps its promises: the Quick start shape, and a Python example that runs."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_quick_start_is_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\n\n```(?:sh|shell|bash)\n(.*?)```", text, re.S | re.M)
    assert match, "README.md must open with '## Quick start' and one fenced shell block"
    commands = [line for line in match.group(1).splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    assert re.findall(r"^## .*$", text, re.M)[0] == "## Quick start"


def test_python_example_runs(monkeypatch, tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from art_denoise.attacks.backends import available_backends

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert blocks, "README.md has no Python example"
    source = blocks[0]
    # Keep the example honest but use only the backends installed here.
    source = source.replace('["art", "torchattacks", "foolbox"]', repr(available_backends()))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec(compile(source, "README.md", "exec"), namespace)
    report = namespace["report"]
    assert (tmp_path / "my-report" / "report.json").is_file()
    model_report = report.models[0]  # type: ignore[attr-defined]
    assert model_report.clean_accuracy > 0.95
    assert model_report.results[0].robust_accuracy < model_report.clean_accuracy


def test_later_python_examples_run(monkeypatch, tmp_path) -> None:
    """Every other Python block, run after the first in one namespace (fewer epochs/draws)."""
    import matplotlib

    matplotlib.use("Agg")
    from art_denoise.attacks.backends import available_backends

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 3
    first = blocks[0].replace('["art", "torchattacks", "foolbox"]', repr(available_backends()))
    later = [
        b.replace("nb_epochs=10", "nb_epochs=2")
        .replace("nb_epochs=20", "nb_epochs=3")
        .replace("eot_samples=16", "eot_samples=4")
        for b in blocks[1:]
    ]
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__main__"}
    for source in [first, *later]:
        exec(compile(source, "README.md", "exec"), namespace)
    assert (tmp_path / "ckpt" / "checkpoint.pt").is_file()
    results = namespace["report"].models[0].results  # type: ignore[attr-defined]
    # through every installed backend (evaluate's default): single draws, then EOT
    k = len(available_backends())
    assert [r.eot_samples for r in results] == [1] * k + [4] * k
