"""main.cf syntax: comments, continuation lines, name = value, duplicates, malformed lines."""

from __future__ import annotations

import pytest

from postier.config import Config, ConfigError, parse_main_cf
from postier.config.maincf import read_logical_lines, split_nameval


def values(text: str) -> dict[str, str]:
    return {n: e.value for n, e in parse_main_cf(text, "main.cf").entries.items()}


def test_comments_and_blank_lines_are_ignored():
    text = "# comment\n   # indented comment\n\n   \nmyorigin = example.com\n#relayhost = x\n"
    assert values(text) == {"myorigin": "example.com"}


def test_hash_after_value_is_not_a_comment():
    assert values("relayhost = [h] # not a comment\n") == {"relayhost": "[h] # not a comment"}


def test_whitespace_around_equals_is_optional_and_value_is_trimmed():
    assert values("a=1\nb =2\nc= 3\nd   =   4   \ne =\n") == {
        "a": "1", "b": "2", "c": "3", "d": "4", "e": ""}


def test_value_may_contain_equals():
    assert values("myorigin = a = b\n") == {"myorigin": "a = b"}


def test_continuation_lines_are_joined_as_is():
    # Postfix's readllines() keeps the continuation line's leading whitespace
    text = "mydestination = a,\n   b,\n\tc\nrelayhost = [h]\n  :25\n"
    assert values(text) == {"mydestination": "a,   b,\tc", "relayhost": "[h]  :25"}


def test_comments_and_blank_lines_do_not_end_a_continued_entry():
    text = "mydestination = a,\n\n# comment\n   b\n  # indented comment\n c\nx = 1\n"
    v = values(text)
    assert v["mydestination"] == "a,   b c"
    assert v["x"] == "1"


def test_continued_value_on_the_next_line_only():
    assert values("smtpd_banner =\n   hello world\n") == {"smtpd_banner": "hello world"}


def test_logical_line_numbers_are_first_lines():
    lines = read_logical_lines("a = 1\n  b\n\n# x\nc = 2\n", "main.cf")
    assert lines == [(1, "a = 1  b"), (5, "c = 2")]


def test_crlf_line_endings_are_trimmed_from_values():
    assert values("a = 1\r\nb = 2\r\n") == {"a": "1", "b": "2"}


def test_no_final_newline():
    assert values("a = 1\nb = 2") == {"a": "1", "b": "2"}


def test_later_duplicate_wins_with_postfix_warning():
    main = parse_main_cf("myorigin = a\nx = 1\nmyorigin = b\n  c\n", "/etc/postier/main.cf")
    assert main.entries["myorigin"].value == "b  c"
    assert main.entries["myorigin"].line == 3
    assert main.warnings == [
        "/etc/postier/main.cf, line 3: overriding earlier entry: myorigin=a"]


def test_identical_duplicate_is_silent():
    main = parse_main_cf("a = 1\na = 1\n", "main.cf")
    assert main.warnings == []
    assert main.entries["a"].line == 2


def test_leading_whitespace_line_is_skipped_with_warning():
    main = parse_main_cf("  leading = ws\n    more\nmyorigin = y\n", "main.cf")
    assert values("  leading = ws\n    more\nmyorigin = y\n") == {"myorigin": "y"}
    assert main.warnings == [
        'main.cf, line 1: logical line must not start with whitespace: "  leading = ws    more"']


def test_leading_whitespace_warning_truncates_long_text():
    main = parse_main_cf("   " + "x" * 40 + " = 1\n", "main.cf")
    assert main.warnings == [
        'main.cf, line 1: logical line must not start with whitespace: "   ' + "x" * 27 + '..."']


@pytest.mark.parametrize("text, line, message", [
    ("junk line\n", 1,
     'missing \'=\' after attribute name: "junk line" (expected name = value)'),
    ("a = 1\n= value\n", 2, 'missing attribute name: "= value" (expected name = value)'),
    ("a = 1\nmy origin = value\n", 2,
     'missing \'=\' after attribute name: "my origin = value" (expected name = value)'),
    ("a = 1\n\nbad line\n  cont\n", 3,
     'missing \'=\' after attribute name: "bad line  cont" (expected name = value)'),
])
def test_malformed_lines_name_file_and_first_line(text, line, message):
    with pytest.raises(ConfigError) as ei:
        parse_main_cf(text, "/etc/postier/main.cf")
    assert str(ei.value) == f"/etc/postier/main.cf, line {line}: {message}"
    assert ei.value.line == line


def test_split_nameval_matches_postfix():
    assert split_nameval("  name =  value with  spaces  ") == ("name", "value with  spaces")
    assert split_nameval("name=") == ("name", "")
    with pytest.raises(ValueError, match="missing attribute name"):
        split_nameval("   ")


def test_names_with_odd_characters_are_accepted():
    # Postfix accepts any name up to whitespace or '=' (it then warns "unused")
    assert values("x.y = 1\n") == {"x.y": "1"}


def test_config_from_text_source_and_default():
    cfg = Config.from_text("# c\nmyorigin = example.com\n", "/etc/postier/main.cf")
    assert cfg.source("myorigin") == ("/etc/postier/main.cf", 2)
    assert cfg.source("relayhost") is None
    assert cfg.is_default("relayhost") and not cfg.is_default("myorigin")
    assert cfg.raw("myorigin") == "example.com"
    assert cfg.raw("mydestination") == "$myhostname, localhost.$mydomain, localhost"
