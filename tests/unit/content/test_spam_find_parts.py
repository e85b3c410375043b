"""Node.find_parts: a leaf (a message without MIME parts) answers without
its cache, as the tree walk answers; a multipart one as before."""

from __future__ import annotations

import re

from postier.content.spam.message import Message

PLAIN = b"Subject: x\nContent-Type: text/html; charset=us-ascii\n\n<p>hi</p>\n"
MULTI = (b"Subject: x\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n"
         b"--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: text/html\n\n<p>hi</p>\n--b--\n")


def _walk(msg, rx, only_leaves, recursive):
    return msg._find_parts(rx, only_leaves, recursive)


def test_leaf_is_the_walk():
    msg = Message(PLAIN)
    assert msg.is_leaf()
    for rx in (None, re.compile(r"^text/html"), re.compile(r"^text/plain"), re.compile(".")):
        for only in (False, True):
            for rec in (False, True):
                got = msg.find_parts(rx, only, rec)
                assert got == _walk(msg, rx, only, rec)
    assert msg.find_parts(re.compile(r"^text\b")) == [msg]
    assert msg.find_parts(re.compile(r"^image/")) == []


def test_answers_are_fresh_lists():
    for data in (PLAIN, MULTI):
        msg = Message(data)
        first = msg.find_parts(None, True)
        first.append("junk")
        assert "junk" not in msg.find_parts(None, True)


def test_multipart_unchanged():
    msg = Message(MULTI)
    assert not msg.is_leaf()
    types = [p.type for p in msg.find_parts()]
    assert types == ["multipart/alternative", "text/plain", "text/html"]
    assert [p.type for p in msg.find_parts(re.compile(r"^text\b"), True)] == ["text/plain", "text/html"]
    assert msg.find_parts(re.compile(r"^text\b"), True) == _walk(msg, re.compile(r"^text\b"), True, True)
