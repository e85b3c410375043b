"""`postier alias`: build and query alias databases, like Postfix's postalias(1).

    postier alias [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] [type:]file...

`postier alias /etc/aliases` (newaliases) reads the aliases(5) file and
writes /etc/aliases.db (a postier `hash:` table, see postier.maps.hash):
names folded to lower case (unless -f), values in external (quoted) form,
plus the `@` and YP_LAST_MODIFIED / YP_MASTER_NAME entries postalias adds.
See postier.maps.aliases for the parsing rules.

* `-q NAME` prints the value (exit 0) or exits 1; `-q -` reads names from
  stdin and prints `name:<TAB>value` for each one found; `-s` prints every
  entry as `name:<TAB>value`; `-d NAME` / `-d -` delete; `-i` adds
  aliases(5) lines from stdin.  Other table types can be queried too.
* Option conflicts, usage and diagnostics are worded as postalias 3.7
  (stderr prefix `postalias:`); `-N`, `-n`, `-v` change nothing.

Parameters read (from CONFIG_DIR/main.cf when -c or $MAIL_CONFIG names a
directory, literal values only): default_database_type, smtputf8_enable,
myhostname (for YP_MASTER_NAME; default: this host's name).
"""

from __future__ import annotations

import os
import sys

from postier import log
from postier.cli import map_cmd
from postier.cli.map_cmd import Fatal, Options
from postier.errors import PostierError

PROG = "postalias"
OPTSPEC = "Nc:d:finopq:rsuvw"
USAGE = ("usage: postalias [-Nfinoprsuvw] [-c config_dir] [-d key] [-q key] "
         "[map_type:]file...")
HELP = f"""{USAGE}

Build and query alias databases, like Postfix's postalias(1) / newaliases.

  postier alias /etc/aliases          build /etc/aliases.db
  postier alias -q NAME /etc/aliases  print the value of NAME (exit 1: not found)
  postier alias -q - /etc/aliases     look up names from stdin, print name:<TAB>value
  postier alias -s /etc/aliases       print all entries
  postier alias -d NAME /etc/aliases  delete NAME (-d -: names from stdin)
  postier alias -i /etc/aliases       add aliases(5) lines from stdin

  -f  do not fold names to lower case    -r/-w  replace/ignore duplicates
  -u  no UTF-8 checks    -c DIR  read DIR/main.cf    -o/-p  owner/permissions
"""


def parse_args(argv: list[str]) -> Options:
    o = Options()
    o.sep = b":\t"
    opts, rest = map_cmd.getopt(argv, OPTSPEC, PROG, USAGE)
    for c, arg in opts:
        if c == "c":
            o.config_dir = arg
        elif c == "d":
            if o.sequence or o.query is not None or o.delkey is not None:
                raise Fatal("specify only one of -s -q or -d")
            o.delkey = arg
        elif c == "f":
            o.fold = False
        elif c == "i":
            o.update = True
        elif c == "o":
            o.as_owner = False
        elif c == "p":
            o.save_perm = False
        elif c == "q":
            if o.sequence or o.query is not None or o.delkey is not None:
                raise Fatal("specify only one of -s -q or -d")
            o.query = arg
        elif c == "r":
            o.dup = "replace"
        elif c == "s":
            if o.query is not None or o.delkey is not None:
                raise Fatal("specify only one of -s or -q or -d")
            o.sequence = True
        elif c == "u":
            o.utf8 = False
        elif c == "v":
            o.verbose += 1
        elif c == "w":
            o.dup = "ignore"
    o.maps = rest
    return o


def _hostname(o: Options) -> str:
    if o.myhostname:
        return o.myhostname
    import socket
    return socket.gethostname()


def do_build(o: Options, ttype: str, name: str) -> None:
    """postalias FILE (bulk) or postalias -i FILE (update from stdin)."""
    from postier.errors import MapError
    from postier.maps import aliases
    from postier.maps import hash as hash_map
    from postier.maps.source import read_source
    map_cmd._check_buildable(ttype)
    path = hash_map.db_path(name)
    if o.update:
        label = "stdin"
        try:
            st = os.fstat(sys.stdin.fileno())
        except (OSError, ValueError):
            st = None
        data = sys.stdin.buffer.read()
    else:
        label = name
        try:
            data = read_source(name)
            st = os.stat(name)
        except MapError as e:
            raise Fatal(str(e)) from None
    owner = map_cmd._file_owner(st, o)
    try:
        with map_cmd.TableLock(path):
            mode = map_cmd._mode(st, path, o)
            old = None
            existing: list[tuple[bytes, bytes]] = []
            folded = o.fold
            if o.update:
                try:
                    old = hash_map._impl().HashTable(path)
                except MapError:
                    if os.path.exists(path):
                        raise
                if old is not None:
                    try:
                        existing = list(old.items())
                        folded = folded and old.folded
                    finally:
                        old.close()
            pairs = aliases.merged_entries(
                data, label, log.warning, fold=o.fold, utf8=o.utf8, dup=o.dup,
                myhostname=_hostname(o), existing=existing, update=o.update, db_label=path)
            hash_map.build(name, pairs, fold_flag=folded, dup="warn", warn=log.warning,
                           mode=mode, owner=owner)
    except MapError as e:
        raise Fatal(str(e)) from None


def run(o: Options) -> int:
    map_cmd.apply_config(o)
    if o.delkey is not None:
        if not o.maps:
            raise Fatal(USAGE)
        return map_cmd.do_delete(o)
    if o.query is not None:
        if not o.maps:
            raise Fatal(USAGE)
        if o.query == "-":
            return map_cmd.do_queries(o)
        return map_cmd.do_query(o)
    if o.sequence:
        return map_cmd.do_sequence(o)
    if not o.maps:
        raise Fatal(USAGE)
    for spec in o.maps:
        ttype, name = map_cmd.split_map(spec, o.db_type)
        do_build(o, ttype, name)
    return 0


def main(argv: list[str]) -> int:
    """`postier alias ARGS`: exit status as postalias."""
    log.setup(PROG, progname=PROG, stderr=True)
    if argv[:1] == ["--help"]:
        sys.stdout.write(HELP)
        return 0
    try:
        return run(parse_args(argv))
    except (Fatal, PostierError) as e:
        map_cmd._flush_quietly()
        log.fatal(str(e))
    return 1
