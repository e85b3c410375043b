"""message.base64_decode (Util::base64_decode): the string operations that
replaced its two substitutions give what the substitutions give, on
hand-picked and random input (well-formed, "=" inside, junk, short groups)."""

from __future__ import annotations

import base64
import binascii
import random
import re

from postier.content.spam import message as M


def _reference(s: bytes) -> bytes:
    """The same steps with the substitutions written as Util.pm's regexes."""
    s = re.sub(rb"\s+", b"", s)
    if len(s) % 4 == 0 and re.fullmatch(rb"[A-Za-z0-9+/=]{2,}={0,2}", s):
        s = re.sub(rb"(=+)(?!=*$)", lambda m: b"A" * len(m.group(1)), s)
        try:
            return base64.b64decode(s)
        except (binascii.Error, ValueError):
            pass
    s = re.sub(rb"[^A-Za-z0-9+/=]", b"", s)
    s = re.sub(rb"=+$", b"", s)
    if len(s) % 4 == 1:
        s = s[:-1]
    s = s.replace(b"=", b"/")
    return base64.b64decode(s + b"=" * (-len(s) % 4))


def test_hand_picked():
    assert M.base64_decode(b"aGVsbG8gd29ybGQ=\n") == b"hello world"
    assert M.base64_decode(b"aGVs\r\nbG8=") == b"hello"
    # "=" inside a well-formed body counts as "A" (six zero bits)
    assert M.base64_decode(b"aG=sbG8=") == base64.b64decode(b"aGAsbG8=")
    assert M.base64_decode(b"aGVsbG8") == b"hello"              # a short last group
    assert M.base64_decode(b"a*GVs!bG8===") == b"hello"         # junk, a long final run
    assert M.base64_decode(b"") == b""
    assert M.base64_decode(b"====") == _reference(b"====")


def test_as_the_substitutions():
    rng = random.Random(9)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    extra = [b"=", b"==", b"===", b"\n", b"\r\n", b" ", b"*", b"-", b"\xe9", b"\x00"]
    inside = 0
    for _ in range(3000):
        parts = []
        for _ in range(rng.randrange(0, 12)):
            if rng.random() < 0.7:
                parts.append(bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 9))))
            else:
                parts.append(rng.choice(extra))
        s = b"".join(parts)
        inside += b"=" in s.rstrip(b"=\r\n ")
        assert M.base64_decode(s) == _reference(s), s
    assert inside > 300
