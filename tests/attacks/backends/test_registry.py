"""Backends are found through entry points; the core works and imports without plugins."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

import pytest

from art_denoise.attacks import backends
from art_denoise.attacks.backends import (
    ENTRY_POINT_GROUP,
    AttackBackend,
    available_backends,
    get_backend,
)
from art_denoise.attacks.backends.art_backend import ARTBackend
from art_denoise.attacks.backends.native_backend import NativeBackend

PLUGINS = [
    # (backend name, attack library, plugin module, class, pinned library version)
    ("torchattacks", "torchattacks", "art_denoise_torchattacks", "TorchattacksBackend", "3.5.1"),
    ("foolbox", "foolbox", "art_denoise_foolbox", "FoolboxBackend", "3.3.4"),
]


@pytest.mark.parametrize(
    ("name", "library", "module", "cls", "version"), PLUGINS, ids=[p[0] for p in PLUGINS]
)
def test_plugin_registered(name, library, module, cls, version):
    pytest.importorskip(library)
    plugin = pytest.importorskip(module)
    assert name in available_backends()
    backend = get_backend(name)
    assert type(backend) is getattr(plugin, cls)
    assert isinstance(backend, AttackBackend)
    assert backend.name == name
    assert backend.package == library
    assert backend.version() == version
    assert get_backend(name) is not backend  # a new instance each time


def test_all_backends_listed():
    pytest.importorskip("art_denoise_torchattacks")
    pytest.importorskip("art_denoise_foolbox")
    assert available_backends() == ["art", "native", "foolbox", "torchattacks"]
    assert isinstance(get_backend("art"), ARTBackend)


def test_core_without_plugins(monkeypatch):
    real = metadata.entry_points

    def no_plugins(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return metadata.EntryPoints(())
        return real(**params)

    monkeypatch.setattr(backends.metadata, "entry_points", no_plugins)
    assert available_backends() == ["art", "native"]
    assert isinstance(get_backend("art"), ARTBackend)
    assert isinstance(get_backend("native"), NativeBackend)
    for name in ("foolbox", "torchattacks"):
        with pytest.raises(ValueError, match=f"pip install plugins/art-denoise-{name}"):
            get_backend(name)


def test_native_backend_is_built_in():
    """No entry point: its version is the package's, a new instance each time."""
    import art_denoise

    backend = get_backend("native")
    assert type(backend) is NativeBackend and backend.name == "native"
    assert backend.package == "art-denoise"
    assert backend.version() == art_denoise.__version__
    assert get_backend("native") is not backend
    assert "native" not in {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def test_native_backend_imports_no_attack_library():
    code = (
        "import sys\n"
        "from art_denoise.attacks.backends import get_backend\n"
        "from art_denoise.attacks.native import apgd, deepfool, pgd\n"
        "get_backend('native')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'art', 'torchattacks', "
        "'foolbox', 'eagerpy'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_import_loads_no_attack_library():
    code = (
        "import sys, art_denoise, art_denoise.attacks.backends as b\n"
        "b.available_backends()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torchattacks', 'foolbox', "
        "'eagerpy', 'art_denoise_torchattacks', 'art_denoise_foolbox'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"


def test_entry_point_must_name_a_backend(monkeypatch):
    real = metadata.entry_points
    bogus = metadata.EntryPoint(name="bogus", value="math:pi", group=ENTRY_POINT_GROUP)

    def with_bogus(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return metadata.EntryPoints((bogus,))
        return real(**params)

    monkeypatch.setattr(backends.metadata, "entry_points", with_bogus)
    assert "bogus" in available_backends()
    with pytest.raises(TypeError, match="AttackBackend"):
        get_backend("bogus")
