"""spamhdr.fast_addresses on comma lists holding "quoted name" <address>
items (taken by the shortcut unless a comma sits inside quotes): the
general parser's answer (headers._parse_header_addresses) whenever the
shortcut answers, native and pure, on fixed cases and mutated lists."""

from __future__ import annotations

import random

from postier.content.spam import headers as H

_LISTS = [
    '"Luis Villa" <louie@ximian.com>, <fork@spamassassin.taint.org>\n',
    '"A" <a@b.com>, "B" <c@d.com>',
    '"a@b.com" <a@b.com>, "x"  <y@z.org>, plain@host.example',
    '"A"\t<a@b.com>, \t "B" <c@d.com> ,',
    '"" <a@b.com>, Name <c@d.com>',
    '"a" "b" <c@d.com>, e@f.gh',
    '"A" <a@b.com>, "B, C" <c@d.com>',
    '"A" <a@b.com>,"B" <c@d.com>',
    '"A" <a@b.com>, "B\\" <c@d.com>',
    'x: "A" <a@b.com>, b@c.de;',
]
_PIECES = ['"', ",", " ", "<", ">", "@", "a", '"x y"', ", ", "\n ", ":", ";", "\\", "(", ")",
           "\xe9", "\t", ",\n\t"]


def _check(fast, s: str) -> bool:
    got = fast(s, H._host_invalid)
    if got is not None:
        assert got == H._parse_header_addresses(s), s
    return got is not None


def test_quoted_lists_fixed(impl):
    fast = impl("spamhdr").fast_addresses
    taken = [_check(fast, s) for s in _LISTS]
    # a trailing comma, two quoted parts, a comma inside quotes, "<a>,<b>"-tight
    # commas, a backslash, a group: the general parser
    assert taken == [True, True, True, False, True, False, False, False, False, False]
    got = fast(_LISTS[0], H._host_invalid)
    assert [a["address"] for a in got] == ["louie@ximian.com", "fork@spamassassin.taint.org"]
    assert [a["phrase"] for a in got] == ["Luis Villa ", None]


def test_quoted_lists_mutated(impl):
    fast = impl("spamhdr").fast_addresses
    rnd = random.Random(7)
    taken = 0
    for base in _LISTS:
        for _ in range(400):
            s = list(base)
            for _ in range(rnd.randint(1, 3)):
                i = rnd.randrange(len(s) + 1)
                if rnd.random() < 0.5 and s:
                    del s[min(i, len(s) - 1)]
                else:
                    s.insert(i, rnd.choice(_PIECES))
            taken += _check(fast, "".join(s))
    assert taken > 300
