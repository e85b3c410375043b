"""postier._native.pcre2call and its ctypes twin: pcre2_match_8 called on a
reflib.Pcre2Regex's addresses gives the answers of reflib's ctypes calls
(yes/no, counts, spans, errors), and LazyPattern uses it."""

from __future__ import annotations

import ctypes
import random

import pytest

from postier.content.spam import rulecache
from postier.maps import reflib

pytestmark = pytest.mark.skipif(not reflib.pcre2_available(), reason="no libpcre2-8")

PATTERNS = [
    (rb"foo", 0), (rb"^a", reflib.PCRE2_MULTILINE), (rb"(a)|(b)", 0), (rb"x*", 0),
    (rb"(?<=b)c(\d+)?", 0), (rb"(\w+)\s\1", reflib.PCRE2_CASELESS), (rb"$", reflib.PCRE2_MULTILINE),
    (rb"a.c", reflib.PCRE2_DOTALL), (rb"\x00z", 0),
]
SUBJECTS = [b"", b"foo", b"a\na\nb", b"bc12 bc", b"Hello hello", b"a\nc", b"\x00z\x00z",
            b"x" * 5000 + b"foo", bytes(range(256)), b"\n\n"]


def _ctypes_spans(rx: reflib.Pcre2Regex, data: bytes, start: int = 0):
    lib = reflib._pcre2
    rc = lib.pcre2_match_8(rx._code, data, len(data), start, 0, rx._md, None)
    if rc == -1:
        return None
    assert rc >= 0
    ov = rx._ov
    unset = ctypes.c_size_t(-1).value
    return [(-1, -1) if ov[2 * i] == unset else (ov[2 * i], ov[2 * i + 1])
            for i in range(rx.capture_count + 1)]


def _ctypes_count(rx: reflib.Pcre2Regex, data: bytes, limit: int) -> int:
    n = pos = 0
    while pos <= len(data):
        sp = _ctypes_spans(rx, data, pos)
        if sp is None:
            break
        n += 1
        if limit and n >= limit:
            break
        s, e = sp[0]
        pos = e if e > s else e + 1
    return n


def _call(impl, rx: reflib.Pcre2Regex):
    mod = impl("pcre2call")
    return mod.Pcre2Call(reflib.pcre2_match_address(), rx._code, rx._md,
                         ctypes.cast(rx._ov, ctypes.c_void_p).value, rx.capture_count,
                         reflib._exec_error)


@pytest.mark.parametrize("pat,opts", PATTERNS)
def test_same_answers_as_ctypes(impl, pat, opts):
    rx = reflib.Pcre2Regex(pat, opts)
    c = _call(impl, rx)
    rnd = random.Random(7)
    subjects = SUBJECTS + [bytes(rnd.choice(b"abcfo\n x\x00") for _ in range(rnd.randrange(60)))
                           for _ in range(200)]
    for data in subjects:
        want = _ctypes_spans(rx, data)
        assert c.spans(data) == want, data
        assert c.matches(data) is (want is not None)
        assert c.matches_retry(data) is (want is not None)
        for limit in (0, 1, 2, 5):
            assert c.count(data, limit) == _ctypes_count(rx, data, limit), (data, limit)


@pytest.mark.slow
def test_errors_raise_reflib_error(impl):
    # catastrophic backtracking against a tiny match limit is an error, not an answer
    rx = reflib.Pcre2Regex(rb"(a+)+$", 0)
    c = _call(impl, rx)
    seen = []

    def error(rc: int) -> Exception:
        seen.append(rc)
        return reflib.RegexExecError(f"rc {rc}")

    mod = impl("pcre2call")
    c = mod.Pcre2Call(reflib.pcre2_match_address(), rx._code, rx._md,
                      ctypes.cast(rx._ov, ctypes.c_void_p).value, rx.capture_count, error)
    data = b"a" * 26 + b"!"
    with pytest.raises(reflib.RegexExecError):
        c.matches(data)
    with pytest.raises(reflib.RegexExecError):
        c.matches_retry(data)
    with pytest.raises(reflib.RegexExecError):
        c.count(data)
    with pytest.raises(reflib.RegexExecError):
        c.spans(data)
    assert seen and all(rc < -1 for rc in seen)
    assert c.matches(b"aaa") is True


def test_bad_arguments(impl):
    mod = impl("pcre2call")
    rx = reflib.Pcre2Regex(rb"a", 0)
    with pytest.raises(ValueError):
        mod.Pcre2Call(0, rx._code, rx._md, 1, 0, reflib._exec_error)
    c = _call(impl, rx)
    with pytest.raises(TypeError):
        c.matches("a")
    with pytest.raises(TypeError):
        c.count(None)


def test_pcre2regex_uses_it():
    rx = reflib.Pcre2Regex(rb"(b)?c", 0)
    assert rx.search(b"ac") == [(1, 2), (-1, -1)]
    assert rx.search(b"bc") == [(0, 2), (0, 1)]
    assert rx.search(b"ab") is None
    assert rx.matches(b"xxc") and not rx.matches(b"xx")
    assert rx.count(b"cbcc", 0) == 3 and rx.count(b"cbcc", 2) == 2


def test_lazy_pattern_search_and_count():
    src = rb"(\w)\1"
    p = rulecache.pattern_from_record([src, None, 0, False, 1, None, None, 0,
                                       True, True, False, 0])
    assert p.search(b"abba") is True
    assert p.search(b"abab") is False
    assert p.ref_count(b"aabbcc dd", 0) == 4
    assert p.ref_count(b"aabbcc dd", 2) == 2
    assert p.spans(b"xaay", 2) == [(1, 3), (1, 2)]
