"""FreeMail's body scan (evals._fm_body): its address patterns (assertions
reordered for speed) match what FreeMail's own patterns match, and the
lines it edits and the addresses it collects are those of the per-line
loop it replaces."""

from __future__ import annotations

import random
import re
import types

from postier.content.spam import evals as E

TLDS = r"(?:com|org|net|co\.uk|de|info)"
LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
IAS = re.I | re.A | re.S
# FreeMail.pm's patterns as they were before the reordering
OLD_EMAIL = re.compile(
    r"(?=.{0,64}@)(?<!" + LOCAL + r")(" + LOCAL + r"+(?:\." + LOCAL + r"+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,59}[a-z0-9])?\.){1,4}" + TLDS + ")", IAS)
OLD_BLANK = re.compile(r"<?(?<!mailto:)" + OLD_EMAIL.pattern +
                       r"(?:>|\s{1,10}(?!(?:fa(?:x|csi)|tel|phone|e?-?mail))[a-z]{2,11}:)", IAS)
OLD_MAILTO = re.compile(r"^(?i:mailto):" + OLD_EMAIL.pattern, IAS)
OLD_URL = re.compile(r"<?https?://\S{0,255}(?:@|%40)\S{0,255}", re.I | re.A)

PIECES = ["a@b.com", "x.y@mail.example.co.uk", "<joe@site.org>", " fax: ", " tel: ", " email: ",
          " word: ", "mailto:", "http://u@h.net/p", "HTTPS://a%40b.de", "%40", "@", ".", "..",
          "a" * 70 + "@x.com", "." * 66 + "b@c.info", "\n", " ", "\t", "Ann.Lee+tag@ex.net\n",
          "z@", "@q.org", "é@ü.com", "x@y.com.", "-a@b.org-"]


def _ctx():
    settings = {"freemail_domains": ["mail.example.co.uk ex.net *.info"]}
    run = types.SimpleNamespace(cr=types.SimpleNamespace(), uri_detail=dict,
                                set_body=lambda lines: setattr(run, "body", lines))
    return types.SimpleNamespace(
        cache={}, run=run, rb=types.SimpleNamespace(tlds_re=TLDS),
        settings=lambda k: settings.get(k, []), body=lambda: run.lines)


def _random_text(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(PIECES) if rnd.random() < 0.6 else rnd.choice("abc .-@:<>x")
                   for _ in range(n))


def test_patterns_match_as_freemails_own() -> None:
    fm = E._FreeMail(_ctx())
    rnd = random.Random(7)
    for _ in range(4000):
        s = _random_text(rnd, rnd.randint(0, 14))
        assert [m.span(1) for m in fm.email_re.finditer(s)] == \
            [m.span(1) for m in OLD_EMAIL.finditer(s)], s
        assert fm.blank_re.sub(" ", s) == OLD_BLANK.sub(" ", s), s
        assert bool(fm.mailto_re.match(s)) == bool(OLD_MAILTO.match(s)), s


def _old_loop(lines: list[bytes]) -> tuple[list[bytes], list[str]]:
    emails: list[str] = []
    seen: set[str] = set()
    lines = list(lines)
    for li, line in enumerate(lines):
        if b"@" not in line and b"%40" not in line:
            continue
        s = OLD_BLANK.sub(" ", OLD_URL.sub(" ", line.decode("latin-1")))
        lines[li] = s.encode("latin-1")
        for m in OLD_EMAIL.finditer(s):
            e = m.group(1).lower()
            if e not in seen:
                emails.append(e)
            seen.add(e)
            if len(emails) >= 40:
                return lines, emails
    return lines, emails


def test_body_scan_edits_the_lines_of_the_per_line_loop() -> None:
    rnd = random.Random(11)
    checked = 0
    for _ in range(600):
        lines = [_random_text(rnd, rnd.randint(0, 8)).replace("\n", " ").encode("latin-1")
                 for _ in range(rnd.randint(0, 12))]
        if rnd.random() < 0.1:
            lines = [b"a@b.com x@y.org c@d.net"] * 20       # the 40-address stop
        ctx = _ctx()
        ctx.run.lines = lines
        before = list(lines)
        got = E._fm_body(ctx)
        want_lines, want_emails = _old_loop(lines)
        # the lines rules see from now on: those set, or the same lines
        # when no line can change (never edited in place)
        assert getattr(ctx.run, "body", lines) == want_lines
        assert lines == before
        fm = E._fm(ctx)
        fms = [e for e in want_emails if fm.is_freemail(e)]
        if len(want_emails) >= 5 or len(fms) >= 3:
            assert got is None
        else:
            assert got == dict.fromkeys(fms, 1)
            checked += bool(fms)
    assert checked > 20


def test_searches_near_each_at_sign_find_the_matches_of_whole_line_searches() -> None:
    # (FreeMail's patterns tried only where a match can start, near each
    # "@": the matches of finditer, the text of sub, on long lines)
    fm = E._FreeMail(_ctx())
    rnd = random.Random(13)
    label = "b" * 59
    long_pieces = PIECES + ["x" * 200, " " * 80, "\0", "\xff\x80", "\"", "'" * 3, "\r\n",
                            "q@" + ".".join([label] * 4) + ".com", "q@" + ".".join([label] * 5) + ".com",
                            "a@b.com" + " " * 10 + "phone:", "a@b.com" + " " * 10 + "faxes:",
                            "a@b.com" + " " * 11 + "word:", "mailto:" + "c" * 64 + "@d.org>",
                            "<" + "c" * 64 + "@d.org>", "<" + "c" * 65 + "@d.org>", "<.c@d.org "]
    hits = 0
    for i in range(3000):
        n = rnd.randint(0, 40 if i % 3 else 200)
        s = "".join(rnd.choice(long_pieces) if rnd.random() < 0.5 else rnd.choice("abc .-@:<>x")
                    for _ in range(n))
        want = [m.span(1) for m in fm.email_re.finditer(s)]
        assert [m.span(1) for m in E._near_at(fm.email_re, s)] == want, s
        assert fm.blank(s) == fm.blank_re.sub(" ", s), s
        hits += bool(want)
    assert hits > 1000
