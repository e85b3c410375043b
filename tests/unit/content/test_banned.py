"""postier.content.banned: rules, name decoding, double extensions, archives, bombs."""

from __future__ import annotations

import base64
import bz2
import gzip
import io
import itertools
import json
import os
import re
import string
import tarfile
import zipfile

import pytest

from postier.content.banned import (
    DEFAULT_EXAMPLE,
    BannedRules,
    check_message,
    decode_name,
    name_reason,
    normalize_name,
)
from postier.errors import ConfigError

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.join(HERE, "..", "..", "compat", "content_checks.json")

RULES = BannedRules.from_config(DEFAULT_EXAMPLE.split())


def message(*parts: bytes) -> bytes:
    body = b"".join(b"--B\n" + p for p in parts)
    return (b"From: a@example.org\nTo: b@example.test\nSubject: x\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=B\n\n--B\nContent-Type: text/plain\n\nhi\n"
            + body + b"--B--\n")


def attachment(payload: bytes, *, ctype: str = "application/octet-stream",
               disposition: str | None = None, ctype_params: str = "") -> bytes:
    head = f"Content-Type: {ctype}{ctype_params}\n"
    if disposition is not None:
        head += f"Content-Disposition: attachment; {disposition}\n"
    head += "Content-Transfer-Encoding: base64\n\n"
    return head.encode() + base64.encodebytes(payload)


def named(name: str, payload: bytes = b"MZ\x90\x00") -> bytes:
    return attachment(payload, disposition=f'filename="{name}"')


def zipped(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return buf.getvalue()


def reasons(msg: bytes, rules: BannedRules = RULES) -> list[tuple[str, str]]:
    return [(h.short(), h.reason) for h in check_message(msg, rules)]


# ----------------------------------------------------------------------------- rules


def test_default_example_is_the_header_checks_manual_list():
    """The example list equals the extensions of header_checks(5)'s attachment
    rule as recorded in the compat fixture (all strings of 1-3 letters the
    manual's alternation matches)."""
    with open(COMPAT, encoding="utf-8") as f:
        fixture = json.load(f)
    text = next(t["text"] for d in fixture["dialogs"] for t in (d.get("tables") or {}).values()
                if "ade|adp" in t["text"])
    alt = re.search(r"\(\s*(ade\|.*?)\s*\)\)", text, re.S).group(1)
    pattern = re.compile(r"(?:" + re.sub(r"\s+", "", alt) + r")\Z")
    manual = {"".join(p) for n in (1, 2, 3) for p in itertools.product(string.ascii_lowercase,
                                                                         repeat=n)
              if pattern.match("".join(p))}
    assert manual == set(DEFAULT_EXAMPLE.split())


def test_rule_forms():
    r = BannedRules.from_config(["exe", ".SCR", "*.vbs", "application/x-msdownload",
                                 "audio/*", "inline:{evil.pdf=REJECT}"])
    assert r.extensions == {"exe", "scr", "vbs"}
    assert r.mime_types == {"application/x-msdownload"}
    assert r.mime_wildcards == {"audio"}
    assert len(r.tables) == 1 and r.enabled
    assert not BannedRules.from_config([]).enabled


@pytest.mark.parametrize("bad", ["ex e", "/x", "application/", "a.b/c d", "!exe"])
def test_rule_errors(bad):
    with pytest.raises(ConfigError, match="banned_filename_rules"):
        BannedRules.from_config([bad])


def test_bad_table_is_a_config_error():
    with pytest.raises(ConfigError, match="banned_filename_rules"):
        BannedRules.from_config(["nosuchtype:/x"])


# ----------------------------------------------------------------------------- names


def test_decode_names():
    assert decode_name("=?UTF-8?B?aW52b2ljZS5wZGYuZXhl?=") == "invoice.pdf.exe"
    assert decode_name("=?iso-8859-1?Q?r=E9sum=E9.scr?=") == "résumé.scr"
    assert decode_name(("utf-8", "", "%72eport.exe")) == "%72eport.exe"
    assert decode_name(None) == ""
    assert decode_name("plain.txt") == "plain.txt"


def test_name_reasons():
    assert name_reason("setup.EXE", RULES) == ".exe"
    assert name_reason("invoice.pdf.exe", RULES) == "double extension .pdf.exe"
    assert name_reason("invoice.pdf.exe. . ", RULES) == "double extension .pdf.exe"
    assert name_reason("C:\\temp\\run.bat", RULES) == ".bat"
    assert name_reason("dir/sub/x.js", RULES) == ".js"
    assert name_reason("inv\u202efdp.exe", RULES) == "bidi override character in name"
    assert name_reason("a\u200b.exe", RULES) == ".exe"
    assert name_reason("report.pdf", RULES) is None
    assert name_reason("exe", RULES) is None
    assert name_reason(".exe", RULES) == ".exe"
    assert normalize_name("a/b\\c.exe. ") == "c.exe"


# ----------------------------------------------------------------------------- messages


def test_clean_message_and_disabled_rules():
    msg = message(named("report.pdf", b"%PDF-1.4"))
    assert check_message(msg, RULES) == []
    assert check_message(message(named("x.exe")), BannedRules()) == []


def test_names_from_either_header_and_encodings():
    # a harmless Content-Disposition name does not hide a banned Content-Type name
    msg = message(attachment(b"MZ", disposition='filename="notes.txt"',
                             ctype_params='; name="notes.txt.scr"'))
    assert reasons(msg) == [("notes.txt.scr", "double extension .txt.scr")]
    msg = message(attachment(b"MZ", disposition="filename*=UTF-8''%72%65port.exe"))
    assert reasons(msg) == [("report.exe", ".exe")]
    msg = message(attachment(b"MZ", disposition='filename*0="in"; filename*1="voice.vbs"'))
    assert reasons(msg) == [("invoice.vbs", ".vbs")]
    msg = message(attachment(b"MZ", disposition='filename="=?UTF-8?B?aW52b2ljZS5wZGYuZXhl?="'))
    assert reasons(msg) == [("invoice.pdf.exe", "double extension .pdf.exe")]
    # non-ASCII names are shown with ? in replies and logs
    msg = message(attachment(b"MZ", disposition='filename="=?UTF-8?Q?r=C3=A9sum=C3=A9.cmd?="'))
    assert reasons(msg) == [("r?sum?.cmd", ".cmd")]


def test_single_part_message_with_a_name():
    msg = (b"From: a@example.org\nMIME-Version: 1.0\nContent-Type: application/octet-stream;"
           b' name="x.pif"\nContent-Transfer-Encoding: base64\n\nTVo=\n')
    assert reasons(msg) == [("x.pif", ".pif")]


def test_mime_type_rules():
    rules = BannedRules.from_config(["application/x-msdownload", "message/partial", "video/*"])
    msg = message(attachment(b"MZ", ctype="application/x-msdownload",
                             disposition='filename="tool.bin"'))
    assert reasons(msg, rules) == [("tool.bin", "MIME type application/x-msdownload")]
    msg = message(attachment(b"x", ctype="video/mp4"))
    assert reasons(msg, rules) == [("video/mp4", "MIME type video/mp4")]


def test_table_rules_with_exemption(tmp_path):
    table = tmp_path / "banned"
    table.write_text("/^trusted-.*\\.exe$/ OK\n/^maybe/ DUNNO\n/\\.exe$/ REJECT executable\n"
                     "/^application\\/x-sh$/ shell script\n")
    rules = BannedRules.from_config([f"regexp:{table}", "exe"])
    assert reasons(message(named("trusted-setup.exe")), rules) == []
    assert reasons(message(named("setup.exe")), rules) == [("setup.exe", "executable")]
    assert reasons(message(named("maybe.scr")), BannedRules.from_config(
        [f"regexp:{table}", "scr"])) == [("maybe.scr", ".scr")]
    msg = message(attachment(b"#!/bin/sh", ctype="application/x-sh"))
    assert reasons(msg, rules) == [("application/x-sh", "shell script")]


# ----------------------------------------------------------------------------- archives


def test_names_inside_zip_and_nested_zip():
    inner = zipped({"docs/readme.txt": b"hi", "docs/setup.scr": b"MZ"})
    assert reasons(message(named("files.zip", inner))) == [
        ("files.zip/docs/setup.scr", ".scr")]
    outer = zipped({"inner.zip": inner, "a.txt": b"x"}, zipfile.ZIP_STORED)
    assert reasons(message(named("outer.zip", outer))) == [
        ("outer.zip/inner.zip/docs/setup.scr", ".scr")]
    # found by content, whatever the attachment is called
    assert reasons(message(named("data.bin", inner))) == [("data.bin/docs/setup.scr", ".scr")]


def test_tar_gz_bz2_and_gzip_names():
    def tar(mode: str) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=mode) as tf:
            for name in ("ok.txt", "bin/evil.vbs"):
                info = tarfile.TarInfo(name)
                info.size = 3
                tf.addfile(info, io.BytesIO(b"abc"))
        return buf.getvalue()
    for mode, name in (("w", "a.tar"), ("w:gz", "a.tgz"), ("w:bz2", "a.tbz")):
        assert reasons(message(named(name, tar(mode)))) == [(f"{name}/bin/evil.vbs", ".vbs")]
    gz = io.BytesIO()
    with gzip.GzipFile(filename="run.bat", fileobj=gz, mode="wb") as g:
        g.write(b"@echo off\n")
    assert reasons(message(named("x.gz", gz.getvalue()))) == [("x.gz/run.bat", ".bat")]
    # a zip inside a bzip2 stream
    assert reasons(message(named("x.bz2", bz2.compress(zipped({"y.com": b"x"}))))) == [
        ("x.bz2/(data)/y.com", ".com")]


def test_corrupt_archive_is_not_banned():
    broken = zipped({"a.exe": b"x"})[:40]
    assert reasons(message(named("broken.zip", broken))) == []


def test_zip_bomb_ratio():
    bomb = zipped({"zeros.bin": b"\0" * (8 << 20)})
    assert len(bomb) < 20000
    (hit,) = check_message(message(named("bomb.zip", bomb)), RULES)
    assert hit.reason.startswith("archive bomb: compression ratio ") and hit.reason.endswith("> 300")
    # small members never count as bombs, and 0 disables the ratio
    assert check_message(message(named("s.zip", zipped({"z": b"\0" * 100000}))), RULES) == []
    no_ratio = BannedRules.from_config(["exe"], max_ratio=0)
    assert check_message(message(named("bomb.zip", bomb)), no_ratio) == []


def test_zip_total_size_and_declared_sizes():
    rules = BannedRules.from_config(["exe"], max_size=4 << 20, max_ratio=0)
    data = zipped({f"f{i}.txt": os.urandom(1 << 20) for i in range(5)}, zipfile.ZIP_STORED)
    (hit,) = check_message(message(named("big.zip", data)), rules)
    assert hit.reason == f"archive bomb: more than {4 << 20} bytes uncompressed"


def test_gzip_bomb_is_stopped_while_decompressing():
    rules = BannedRules.from_config(["exe"])
    data = gzip.compress(b"\0" * (32 << 20))
    (hit,) = check_message(message(named("zeros.gz", data)), rules)
    assert hit.reason.startswith("archive bomb: compression ratio")


def test_nesting_depth():
    z = zipped({"core.txt": b"x"})
    for i in range(4):
        z = zipped({f"level{i}.zip": z}, zipfile.ZIP_STORED)
    deep = BannedRules.from_config(["exe"], max_depth=3)
    (hit,) = check_message(message(named("deep.zip", z)), deep)
    assert hit.reason == "archive nesting deeper than 3 levels"
    assert check_message(message(named("deep.zip", z)), BannedRules.from_config(["exe"])) == []


def test_member_names_in_encrypted_zip_are_checked():
    data = bytearray(zipped({"payload.exe": b"MZ"}, zipfile.ZIP_STORED))
    # set the "encrypted" flag bit in the local and central headers
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = data.find(sig)
        data[i + off] |= 1
    assert reasons(message(named("locked.zip", bytes(data)))) == [
        ("locked.zip/payload.exe", ".exe")]
