"""postier qshape: option parsing, domain keys, buckets, ordering, layout.

The table layout itself is pinned by the qshape_*.in/.ref goldens (checked
against Postfix 3.7.11's qshape); these tests cover the rules one by one.
"""

from __future__ import annotations

import pytest
from _queue_spec import build_postier, run_cli

from postier.cli import qshape_cmd
from postier.cli.qshape_cmd import Options, Shape, UsageError, domain_of, parse_args

NOW = 1795845000.0


@pytest.mark.parametrize("addr,key", [
    ("user@Example.COM", "example.com"),
    ("", "MAILER-DAEMON"),
    ("a@b@c.test", "c.test"),                 # everything up to the last '@'
    ("u@sub..example.net.", "sub.example.net"),
    ("u@.lead.test", "lead.test"),
    ("root", "root"),                         # no domain: the whole address
    ("u@ÄÖ.test", "ÄÖ.test"),                 # only ASCII is lower-cased (Perl lc on bytes)
])
def test_domain_key(addr, key):
    assert domain_of(addr) == key


def test_parse_args_bundling_and_values():
    o = parse_args(["-sp", "-b3", "-t", "2", "-m", "1", "-w", "120", "deferred", "hold"])
    assert (o.senders, o.parents, o.buckets, o.tick, o.min_sub, o.width) == (True, True, 3, 2, 1, 120)
    assert o.queues == ["deferred", "hold"]
    assert parse_args([]).queues == ["incoming", "active"]


def test_out_of_range_values_are_ignored_like_qshape():
    o = parse_args(["-w", "50", "-b", "0", "-t", "-1", "-m", "0"])
    assert (o.width, o.buckets, o.tick, o.min_sub) == (80, 10, 5, 5)


@pytest.mark.parametrize("argv,msg", [
    (["-x"], "Unknown option: x"),
    (["-b"], "option requires an argument -- b"),
    (["-b", "many"], "-b: not a number: many"),
    (["-b", "2.5"], "-b: not a whole number: 2.5"),
])
def test_bad_options(argv, msg):
    with pytest.raises(UsageError) as e:
        parse_args(argv)
    assert str(e.value) == msg


def test_bad_option_exit_status(monkeypatch):
    rc, out, err = run_cli(["qshape", "-x"], monkeypatch)
    assert (rc, out) == (255, "")
    assert err.startswith("qshape: Unknown option: x\nUsage: qshape [ -s ] [ -p ]")


def test_help(monkeypatch):
    rc, out, _ = run_cli(["qshape", "--help"], monkeypatch)
    assert rc == 0 and out.startswith("Usage: qshape") and "incoming and active" in out


@pytest.mark.parametrize("age_min,bucket", [
    (0, 1), (4.99, 1), (5, 2), (9.99, 2), (10, 3), (19.9, 3), (20, 4), (1279, 9),
    (1280, 10), (100000, 10), (-3, 1)])
def test_geometric_buckets(age_min, bucket):
    s = Shape(Options(), NOW)
    assert s.bucket(NOW - age_min * 60) == bucket


def test_linear_buckets():
    s = Shape(Options(linear=True, buckets=4, tick=10), NOW)
    assert [s.bucket(NOW - m * 60) for m in (0, 9, 10, 25, 35, 500)] == [1, 1, 2, 3, 4, 4]


def test_header_for_few_buckets():
    assert Shape(Options(buckets=1), NOW).render().splitlines()[0].split() == ["T", "0+"]
    assert Shape(Options(buckets=2, tick=0.5), NOW).render().splitlines()[0].split() == \
        ["T", "0.5", "0.5+"]


def test_ties_sort_total_first_then_name():
    """Real qshape leaves ties in Perl hash order; postier sorts them."""
    s = Shape(Options(), NOW)
    s.add(NOW, "s@x.test", ["a@bb.cc"])      # a 5-character domain with every recipient
    rows = [line.split()[0] for line in s.render().splitlines()[1:]]
    assert rows == ["TOTAL", "bb.cc"]
    s.add(NOW, "s@x.test", ["a@aa.cc", "b@zz.cc", "c@zz.cc", "d@aa.cc"])
    rows = [line.split()[0] for line in s.render().splitlines()[1:]]
    assert rows == ["TOTAL", "aa.cc", "zz.cc", "bb.cc"]


def test_short_domain_with_all_recipients_sorts_before_total():
    s = Shape(Options(), NOW)
    s.add(NOW, "s@x.test", ["a@b.c", "b@b.c"])
    assert [line.split()[0] for line in s.render().splitlines()[1:]] == ["b.c", "TOTAL"]


def test_parent_subdomain_counts():
    s = Shape(Options(parents=True, min_sub=2), NOW)
    s.add(NOW, "s@x", ["a@x.a.example.com", "b@y.a.example.com", "c@x.a.example.com"])
    assert s.sub[".a.example.com"] == 2
    assert s.sub[".example.com"] == 1          # only .a.example.com below it
    assert s.q[".example.com"][0] == 3
    names = [line.split()[0] for line in s.render().splitlines()[1:]]
    assert ".a.example.com" in names and ".example.com" not in names


def test_delivered_recipients_and_empty_messages_not_counted(tmp_path, monkeypatch):
    spec = {"now": NOW, "messages": [
        {"queue": "deferred", "id": "6B0A6C7900000001", "age": 60, "sender": "a@x.test",
         "recipients": [{"address": "d@done.test", "done": True}, "p@pending.test"]},
        {"queue": "deferred", "id": "6B0A6C7900000002", "age": 60, "sender": "b@y.test",
         "recipients": [{"address": "e@done.test", "done": True}]},
        {"queue": "deferred", "id": "6B0A6C7900000003", "raw": "not a queue file"}]}
    confdir, _ = build_postier(spec, str(tmp_path))
    rc, out, err = run_cli(["qshape", "-c", confdir, "deferred"], monkeypatch, now=NOW)
    assert (rc, err) == (0, "")
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["TOTAL", "1"],
                                                                  ["pending.test", "1"]]
    rc, out, _ = run_cli(["qshape", "-c", confdir, "-s", "deferred"], monkeypatch, now=NOW)
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["TOTAL", "1"], ["x.test", "1"]]


def test_missing_queue_warns_and_continues(tmp_path, monkeypatch):
    confdir, _ = build_postier({"messages": []}, str(tmp_path))
    rc, out, err = run_cli(["qshape", "-c", confdir, "nosuch", "deferred"], monkeypatch)
    assert rc == 0
    assert err == "qshape: Can't stat nosuch: No such file or directory\n"
    assert out.splitlines()[1].split() == ["TOTAL"] + ["0"] * 11


def test_absolute_queue_path_needs_no_config(tmp_path, monkeypatch):
    spec = {"now": NOW, "messages": [
        {"queue": "hold", "id": "6B0A6C7900000001", "age": 60, "sender": "a@x.test",
         "recipients": ["r@abs.test"]}]}
    _, qdir = build_postier(spec, str(tmp_path))
    rc, out, _ = run_cli(["qshape", "-c", "/nonexistent", f"{qdir}/hold"], monkeypatch, now=NOW)
    assert rc == 0 and "abs.test" in out


def test_terminal_shows_top_rows_only(tmp_path, monkeypatch):
    spec = {"now": NOW, "messages": [
        {"queue": "deferred", "id": f"6B0A6C79000000{i:02d}", "age": 60, "sender": "a@x.test",
         "recipients": [f"r@d{i:02d}.test"] * (i + 1)} for i in range(5)]}
    confdir, _ = build_postier(spec, str(tmp_path))
    from _queue_spec import _Out

    class Tty(_Out):
        def isatty(self):
            return True
    import io
    import sys
    out, err = Tty(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(qshape_cmd, "_now", lambda: NOW)
    assert qshape_cmd.main(["-c", confdir, "-n", "3", "deferred"]) == 0
    text = out.value()
    assert text.startswith("\033[H\033[2J")
    rows = [line.split()[0] for line in text.split("\033[H\033[2J")[-1].splitlines()[1:]]
    assert rows == ["TOTAL", "d04.test", "d03.test"]       # 3 rows, TOTAL included
