"""The uri rules' subjects and the template test on them:

- spamuri.uri_bytes (Run.uri_list's encoding loop, compiled) gives every
  cleaned URI of a detail list once, Latin-1 encoded or else UTF-8 with
  surrogates passed, as get_uri_list (written plainly here) and str.encode do;
- Run._template_possible's search of the joined subjects (the subject
  holding each place a value is found) selects the subjects the
  per-subject test selects, values spanning two subjects, holding a line
  feed, empty, 8-bit or repeated included.
"""

from __future__ import annotations

import random

import pytest

from postier.content.spam import uri as U
from postier.content.spam.engine import Run


def _uri_list(udl: dict[str, dict]) -> list[str]:
    """SpamAssassin's get_uri_list, written plainly: every cleaned URI, once."""
    out: dict[str, None] = {}
    for info in udl.values():
        for c in info.get("cleaned", []):
            out.setdefault(c, None)
    return list(out)


def _uri_bytes_reference(udl: dict) -> list[bytes]:
    out = []
    for u in _uri_list(udl):
        try:
            out.append(u.encode("latin-1"))
        except UnicodeEncodeError:
            out.append(u.encode("utf-8", "surrogatepass"))
    return out


_PIECES = ["http://a.example/", "mailto:x@y.org", "\xe9", "\u0100", "\ud800", "\x00", "\n",
           "\U0001f600", "%41", "&#", "A", ""]


def _random_udl(rnd: random.Random) -> dict:
    udl: dict = {}
    pool = ["".join(rnd.choice(_PIECES) for _ in range(rnd.randint(0, 4))) for _ in range(6)]
    for k in range(rnd.randint(0, 6)):
        ent: dict = {"types": {"parsed": 1}}
        if rnd.random() < 0.8:
            ent["cleaned"] = [rnd.choice(pool) for _ in range(rnd.randint(0, 3))]
        udl[f"raw{k}"] = ent
    return udl


def test_uri_bytes_is_uri_list_encoded(impl):
    su = impl("spamuri")
    rnd = random.Random(7)
    for _ in range(3000):
        udl = _random_udl(rnd)
        assert su.uri_bytes(udl) == _uri_bytes_reference(udl), udl
    huge = {"a": {"cleaned": ["http://x.example/" + "\xff" * 100000, "h"]},
            "b": {"cleaned": ["h", "\u20ac" * 50000]}}
    assert su.uri_bytes(huge) == _uri_bytes_reference(huge)
    assert su.uri_bytes({}) == []


def test_run_uri_list_is_the_encoded_detail_list():
    assert U.UriExtractor.uri_bytes({"u": {"cleaned": ["http://\u0100/", "http://\xe9/"]}}) \
        == ["http://\u0100/".encode(), b"http://\xe9/"]


def _possible_per_subject(required, fold, subjects, values):
    """What _template_possible selects: each subject (decoded as Latin-1,
    lower-cased for fold) holding a value of every required tag."""
    need = [[v.lower() if fold else v for v in values.get(t, ())] for t in required]
    texts = [s.decode("latin-1") for s in subjects]
    if fold:
        texts = [t.lower() for t in texts]
    return [s for s, t in zip(subjects, texts, strict=True)
            if all(any(v in t for v in vals) for vals in need)]


_ALPHABET = ["a", "B", "@", ".", "x", "\n", "\xe9", "\xc9", "\x00", "q@x.com", "Q@X.COM", "ab", "\xff"]


@pytest.mark.parametrize("seed", range(4))
def test_template_possible_joined_search_selects_each_subject_holding_the_values(seed):
    rnd = random.Random(seed)

    def text(n: int) -> str:
        return "".join(rnd.choice(_ALPHABET) for _ in range(n))

    for _ in range(4000):
        required = rnd.choice([("T",), ("T", "U")])
        values = {t: [text(rnd.randint(0, 3)) for _ in range(rnd.randint(0, 3))]
                  for t in ("T", "U") if rnd.random() < 0.9}
        subjects = []
        for _ in range(rnd.randint(1, 7)):
            s = text(rnd.randint(0, 8))
            for v in values.get("T", []) + values.get("U", []):
                if rnd.random() < 0.3:      # a value in it (maybe in capitals, maybe twice)
                    s = s[:2] + (v.upper() if rnd.random() < 0.5 else v) * rnd.randint(1, 2) + s[2:]
            subjects.append(s.encode("latin-1", "replace"))     # (\xff's capital is not Latin-1)
        fold = rnd.random() < 0.5
        texts: dict = {}
        got = Run._template_possible(required, fold, subjects, values, texts)
        assert got == _possible_per_subject(required, fold, subjects, values), \
            (required, fold, subjects, values)
        assert Run._template_possible(required, fold, subjects, values, texts) is got


def test_template_possible_value_across_two_subjects_is_not_found():
    subjects = [b"http://a/?x=bob@exa", b"mple.net", b"http://b/#bob@example.net" * 300]
    assert Run._template_possible(("T",), True, subjects[:2], {"T": ["bob@example.net"]}, {}) == []
    assert Run._template_possible(("T",), True, subjects, {"T": ["BOB@example.net"]}, {}) \
        == subjects[2:]
    assert Run._template_possible(("T",), False, subjects, {"T": ["a/?x=bob@exa\nmple"]}, {}) == []
