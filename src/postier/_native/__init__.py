"""Compiled hot paths, built by setup.py from src/_native/*.pyx.

Never import from here directly: use postier.native.load(NAME), which honours
POSTIER_PURE=1 and falls back to the pure-Python twin in postier._pure.
"""
