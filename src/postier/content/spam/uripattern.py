"""The text of SpamAssassin's linkified-URI regex (PerMsgStatus::_tbirdurire)
and of its TLD part (RegistryBoundaries), built from a TLD list.

    alts = trie_re(tlds)                # the TLDs, factored by common prefixes
    rx = uri_pattern(tlds_re(alts))     # UriExtractor's regex (re, bytes-free str)

One place for both users: postier.content.spam.uri (the Registry and
UriExtractor) and the pure twin of spamuri.UriMatcher, whose answers must
be that regex's.

Parameters read: none.
"""

from __future__ import annotations

import re

START_CHARS = "><\"'`,{[(|\x1b\xa0"     # what may come before a URI (uri.py uses it too)


def trie_re(words) -> str:
    """A regex matching exactly the words, factored by common prefixes (a
    trie, not a flat alternation of ~1500 names, which `re` tries one by
    one; the same language)."""
    trie: dict = {}
    for w in words:
        node = trie
        for c in w:
            node = node.setdefault(c, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alts = [re.escape(c) + emit(child) for c, child in sorted(node.items()) if c]
        if not alts:
            return ""
        if "" in node:
            return "(?:" + "|".join(alts) + ")?"
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
    return emit(trie)


def tlds_re(alts: str) -> str:
    """The TLD part of the URI regex around an alternation of TLDs (trie_re):
    a whole name, not followed by a label character nor by "." and one."""
    return r"(?<![a-zA-Z0-9-])(?:" + alts + r")(?!(?:[a-zA-Z0-9-]|\.[a-zA-Z0-9]))"


def uri_pattern(tlds: str) -> re.Pattern:
    """UriExtractor's linkified-URI pattern with tlds, the TLD expression
    (tlds_re): groups 1 (scheme, www. or ftp. form), 2 (mail) and 3 (bare
    host)."""
    start = START_CHARS + "\\s"
    end = "><\"`}\\]{[|\\s\x1b\xa0"
    end_email = end + ",(\'\x80-\xff"
    end_at = end_email + "@"
    scstart = r"[\!\"\#\$\&\'\(\)\*\+\,\/\:\;\<\=\>\?\@\[\\\]\^\`\{\|\}\~\s\x1b\xa0]"
    schemeless = (r"([a-z\d][a-z\d._-]{0,251}\." + tlds + r")\.?(?::\d{1,5})?(?:\/[^" + end
                  + r"]{1,2048})?")
    known = r"(?:(?:https?|ftp):\/\/|(?:www\d{0,2}|ftp)\.)[^" + end + r"]{1,2048}"
    mail = r"(?:mailto:[^" + end_email + r"]{1,2048}|[^" + end_at + r"]{1,251}\@[^" + end_email + r"]{1,251})"
    return re.compile(
        r"(?:\b|(?<=\x1b\(.)|(?<=[" + start + r"]))"
        r"(?:(?:(" + known + r")(?=(?:[" + end + r"]|\Z)))|"
        r"(?:(" + mail + r")(?=(?:[" + end_email + r"]|\Z)))|"
        r"(?:(?:^|(?<=" + scstart + r"))(" + schemeless + r")(?=(?:[" + end + r"]|\Z))))",
        re.I | re.A | re.S)
