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

from postier import log
from postier.cli import map_cmd
from postier.cli.map_cmd import Fatal, Options

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
    return map_cmd.parse_options(argv, OPTSPEC, PROG, USAGE, o)


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
    map_cmd._check_buildable(ttype)
    path = hash_map.db_path(name)
    label, data, st = map_cmd.build_input(o, name)
    owner = map_cmd._file_owner(st, o)
    try:
        with map_cmd.TableLock(path):
            mode = map_cmd._mode(st, path, o)
            existing: list[tuple[bytes, bytes]] = []
            folded = o.fold
            if o.update:
                old = map_cmd.open_existing(path)
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
    return map_cmd.run_action(o, do_build, USAGE)


def main(argv: list[str]) -> int:
    """`postier alias ARGS`: exit status as postalias."""
    return map_cmd.command_main(argv, PROG, HELP, parse_args, run)
