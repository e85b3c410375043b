"""`postier SUBCOMMAND [ARGS]`: dispatch to one module per subcommand.

Each subcommand module has `main(argv: list[str]) -> int` and its own --help.
"""

from __future__ import annotations

import importlib
import sys

from postier import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("postier.cli.run_cmd", "run the mail system in the foreground"),
    "start": ("postier.cli.control_cmd", "start the mail system in the background (like postfix start)"),
    "stop": ("postier.cli.control_cmd", "stop the mail system (like postfix stop)"),
    "reload": ("postier.cli.control_cmd", "re-read the configuration without dropping sessions"),
    "status": ("postier.cli.control_cmd", "is the mail system running? (like postfix status)"),
    "check": ("postier.cli.control_cmd", "check configuration, tables and directories (like postfix check)"),
    "flush": ("postier.cli.control_cmd", "deliver deferred mail now (like postfix flush)"),
    "config": ("postier.cli.config_cmd", "show or edit main.cf/master.cf (like postconf)"),
    "map": ("postier.cli.map_cmd", "build and query lookup tables (like postmap)"),
    "alias": ("postier.cli.alias_cmd", "build and query alias databases (like postalias)"),
    "queue": ("postier.cli.queue_cmd", "manage the mail queue (like mailq, postqueue, postsuper, postcat)"),
    "qshape": ("postier.cli.qshape_cmd", "queue domain and age distribution (like qshape)"),
    "filter": ("postier.cli.filter_cmd", "after-queue content filter: clamd, banned files, spam (like amavisd-new)"),
    "rules": ("postier.cli.rules_cmd", "lint, compile and explain SpamAssassin rule sets"),
    "greylistd": ("postier.cli.greylistd_cmd", "greylisting policy server (like postgrey)"),
    "bench": ("postier.cli.bench_cmd", "capacity planning: scenarios, load generator, sink, comparisons"),
    "install-compat": ("postier.cli.install_compat_cmd", "install the sendmail, mailq and newaliases links"),
}

USAGE = "usage: postier COMMAND [ARGS...]\n\ncommands:\n" + "".join(
    f"  {name:<10} {doc}\n" for name, (_, doc) in COMMANDS.items()
) + "\n`postier COMMAND --help` describes each command.\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"postier {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        sys.stderr.write(f"postier: unknown command {name!r}\n\n{USAGE}")
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    # a module serving several commands has main_<command>
    entry = getattr(module, "main_" + name.replace("-", "_"), None) or module.main
    try:
        return int(entry(argv[1:]) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
