"""postier._native.spameval's ma_counts and rcvd_date and their pure twin:
the same results as the regexes they replace (multipart_alternative_difference's
word split, the Received date search of check_for_shifted_date), on
hand-picked and generated inputs."""

from __future__ import annotations

import random
import re

_WORDS_A = re.compile(r"(?<!\S)\S*\w\S*", re.A)
_WORDS_U = re.compile(r"(?<!\S)\S*\w\S*")
_RT_DATE = re.compile(r"(\s.?\d+ \S\S\S \d+ \d+:\d+:\d+ \S+)", re.A)

WORDS = ["", " ", "a", " a b ", "...  x.. ,, __ -", "caf\xe9 \xa0 na\xefve\x85x", "\u3000\u65e5\u672c \u2028y",
         "a\x1cb c\x1fd", "\t\n\x0b\x0c\r", "1,2 3\xb2 \u0660", "<img>\n x", "\udcff a\x00b"]

RCVD = ["from a by b; Mon, 5 Jan 2020 10:11:12 +0000", "by x with SMTP id 1; 5 Jan 2020 10:11:12 -0800 (PST)",
        " 12 Jan 2020 1:2:3 +0000", "x\t5 Jan 2020 10:11:12 +0000", "x 55 Jan 2020 10:11:12 ", "x 5 Ja 2020 10:11:12 z",
        "x ,5 Jan 2020 10:11:12 z", "x ,,5 Jan 2020 10:11:12 z", " \n5 Jan 2020 10:11:12 z", " 5 J\xe9n 2020 10:11:12 z",
        "x  5 Jan 2020 10:11:12 +0000", " 5 Jan 2020 10:11:12 ", " 5 Jan 2020 10:11 12 z", "", " ", "; 5 Jan 2020 1:1:1 +\x00"]


def _rand_text(rnd: random.Random, alphabet: str, n: int) -> str:
    return "".join(rnd.choice(alphabet) for _ in range(n))


def _counts(m, text: str, uni: bool) -> dict:
    got: dict = {}
    m.ma_counts(text, uni, got)
    return got


def test_ma_counts_words(impl):
    m = impl("spameval")
    assert _counts(m, "Hello, world !! 42 x_y 42", False) == {"Hello,": 1, "world": 1, "42": 2, "x_y": 1}
    assert _counts(m, "caf\xe9 \xe9\xe9 \xa0", True) == {"caf\xe9": 1, "\xe9\xe9": 1}
    assert _counts(m, "caf\xe9 \xe9\xe9 \xa0", False) == {"caf\xe9": 1}


def test_ma_counts_adds_the_words_counts(impl):
    m = impl("spameval")
    rnd = random.Random(12)
    cases = list(WORDS)
    for _ in range(400):
        cases.append(_rand_text(rnd, " \t\n\x0b\x1c\x85\xa0\u3000a_Z9.,-\xe9\xb2\u0660\u65e5", rnd.randrange(0, 40)))
    for t in cases:
        for uni, rx in ((False, _WORDS_A), (True, _WORDS_U)):
            want = {"a": 3, "q": 1}
            for w in rx.findall(t):
                want[w] = want.get(w, 0) + 1
            got = {"a": 3, "q": 1}
            m.ma_counts(t, uni, got)
            assert got == want, (t, uni)


def _ref_date(line: str):
    mm = _RT_DATE.search(line)
    return mm.group(1) if mm else None


def test_rcvd_date(impl):
    m = impl("spameval")
    assert m.rcvd_date("from a by b; Mon, 5 Jan 2020 10:11:12 +0000") == " 5 Jan 2020 10:11:12 +0000"
    assert m.rcvd_date("by b; 5 Jan 2020 10:11 +0000") is None
    rnd = random.Random(12)
    cases = list(RCVD)
    for r in RCVD:
        for _ in range(60):
            s = list(r)
            i = rnd.randrange(len(s) + 1)
            s.insert(i, rnd.choice(" \t\n,:0123456789Jx\xe9\x1c"))
            if rnd.random() < 0.4 and s:
                del s[rnd.randrange(len(s))]
            cases.append("".join(s))
    for _ in range(300):
        cases.append(_rand_text(rnd, " \n\t:,0123456789Jan+\xe9", rnd.randrange(0, 40)))
    for t in cases:
        assert m.rcvd_date(t) == _ref_date(t), t


class _Ctx:
    def __init__(self, hdrs: dict[str, str]):
        self.hdrs = hdrs

    def get(self, req: str) -> str:
        return self.hdrs.get(req, "")


def test_ratware_name_id_matches_the_quoted_pattern():
    from postier.content.spam import evals as E

    def reference(mid: str, frm: str) -> int:
        m = re.search(r"<[A-Z]{28}\.([^>]+?)>", mid, re.A)
        return 1 if m and re.search(r"\"[^\"]+\"\s*<" + re.escape(m.group(1)) + ">", frm, re.A) else 0

    ids = ["<" + "A" * 28 + ".x.y@z>", "<" + "B" * 28 + ".a+b(c)*>", "<" + "C" * 27 + ".q@r>", ""]
    froms = ['"Bob" <x.y@z>', '"Bob"\n <x.y@z>', '"Bob" <X.Y@Z>', "Bob <x.y@z>", '"" <x.y@z>',
             '"a" "b" \t<a+b(c)*>', '"a\x00" <x.y@z>', "", '"x"<q@r>']
    hits = 0
    for mid in ids:
        for frm in froms:
            want = reference(mid, frm)
            hits += want
            assert E.check_ratware_name_id(_Ctx({"MESSAGEID": mid, "From": frm}), None) == want, (mid, frm)
    assert hits >= 3
