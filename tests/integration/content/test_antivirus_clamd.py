"""postier's clamd client against a real clamd (Debian clamav-daemon) with a
signature database made by the test (EICAR as .ndb and .hdb): INSTREAM over
the unix and TCP sockets, StreamMaxLength, failover, a stopped clamd."""

from __future__ import annotations

import asyncio

from content_peers import EICAR, plain, with_attachment, zip_of

from postier.content.antivirus import Antivirus, ClamdClient, parse_scanner, parse_scanners

NAME = "Postier.Test.EICAR.UNOFFICIAL"     # clamd marks signatures of a local database


def scan(specs: list[str], data: bytes, timeout: float = 30):
    return asyncio.run(Antivirus(parse_scanners(specs), timeout).scan(data))


def test_eicar_inline_attachment_zip_both_sockets(clamd):
    messages = {
        "inline": plain(EICAR + b"\n"),
        "attachment": with_attachment("eicar.com", EICAR),
        "zip": with_attachment("eicar.zip", zip_of({"dir/eicar.com": EICAR}),
                               "application/zip"),
        "bare file": EICAR,
    }
    for spec in (clamd.unix_spec, clamd.inet_spec):
        for what, msg in messages.items():
            r = scan([spec], msg)
            assert (what, r.status, r.viruses) == (what, "infected", [NAME])
            assert r.scanner == spec and r.failures == []
        r = scan([spec], plain(b"a perfectly clean message\n" * 100))
        assert (r.status, r.viruses) == ("clean", [])


def test_large_clean_message_in_chunks(clamd):
    big = plain(b"line of a large but clean message, nothing to see here\n" * 40000)
    assert len(big) > 2 * 1024 * 1024
    r = scan([clamd.inet_spec], big)
    assert r.status == "clean"
    r = scan([clamd.unix_spec], big + EICAR + b"\n")
    assert r.status == "infected"


def test_stream_max_length_exceeded_is_a_failure(start_clamd):
    small = start_clamd(stream_max_length="64K")
    msg = plain(b"x" * 200_000 + b"\n")
    for spec in (small.unix_spec, small.inet_spec):
        r = scan([spec], msg)
        assert r.status == "failed", spec
        assert len(r.failures) == 1 and r.failures[0].startswith(spec + ": ")
    # below the limit it scans
    assert scan([small.unix_spec], plain(EICAR + b"\n")).status == "infected"


def test_failover_and_all_failed(start_clamd, tmp_path):
    c = start_clamd()
    dead = f"clamd:unix:{tmp_path}/no-such.sock"
    r = scan([dead, c.inet_spec], plain(EICAR + b"\n"))
    assert r.status == "infected" and r.scanner == c.inet_spec
    assert r.failures == [f"{dead}: No such file or directory"]
    inet = c.inet_spec
    c.stop()
    r = scan([c.unix_spec, inet], plain(b"clean\n"))
    assert r.status == "failed" and len(r.failures) == 2
    assert r.failures[1] == f"{inet}: Connection refused"


def test_version_and_ping(clamd):
    client = ClamdClient(parse_scanner(clamd.unix_spec))
    assert asyncio.run(client.command("PING")) == "PONG"
    assert asyncio.run(client.command("VERSION")).startswith("ClamAV ")
