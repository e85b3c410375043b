"""postier.native: POSTIER_PURE selects the pure-Python twins."""

import importlib
import os

import pytest

from postier import native

SRC_NATIVE = os.path.join(os.path.dirname(native.__file__), "_native")


def _native_modules():
    return sorted({f.split(".")[0] for f in os.listdir(SRC_NATIVE) if f.endswith(".so")})


def test_every_native_module_has_a_pure_twin():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    pyx_dir = os.path.join(root, "src", "_native")
    names = sorted(f[:-4] for f in os.listdir(pyx_dir) if f.endswith(".pyx"))
    assert names, "no native modules found in src/_native"
    for name in names:
        twin = importlib.import_module(f"postier._pure.{name}")
        assert twin.__name__ == f"postier._pure.{name}"


@pytest.mark.parametrize("name", _native_modules() or ["hashtable"])
def test_pure_env_selects_twin(name, monkeypatch):
    monkeypatch.setenv("POSTIER_PURE", "1")
    assert native.load(name).__name__ == f"postier._pure.{name}"
    monkeypatch.setenv("POSTIER_PURE", "0")
    mod = native.load(name)
    if name in _native_modules():
        assert mod.__name__ == f"postier._native.{name}"
