"""Pure-Python twins of the native modules (same API, same file formats).

POSTIER_PURE=1 selects them; the tests that touch native code run against both.
"""
