"""Build the native hot paths: every src/_native/NAME.pyx becomes postier._native.NAME.

Each native module has a pure-Python twin in postier._pure (POSTIER_PURE=1 selects it).
"""
import glob
import os

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:  # pragma: no cover - cython is a build requirement
    cythonize = None

HERE = os.path.dirname(os.path.abspath(__file__))


def native_extensions():
    exts = []
    for pyx in sorted(glob.glob(os.path.join("src", "_native", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        exts.append(Extension(f"postier._native.{name}", [pyx],
                              extra_compile_args=["-O3"]))
    if not exts or cythonize is None:
        return []
    return cythonize(exts, language_level=3, compiler_directives={
        "boundscheck": False, "wraparound": False, "cdivision": True})


setup(ext_modules=native_extensions())
