"""`postier config`: show or edit main.cf and master.cf, like Postfix's postconf.

Output has postconf's format (`name = value`, whitespace normalized, `-f`
folds long lines; `postconf -M`'s column layout) and diagnostics go to stderr
as `postconf: warning: ...` / `postconf: fatal: ...`, so scripts written for
postconf keep working.  Exit status: 0, or 1 after a fatal error (a
malformed main.cf/master.cf is one line naming file and line, never a
traceback).  Unknown names on the command line only warn, as with postconf.

Parameters read: all of them (this is the configuration viewer);
config_directory is the directory given with -c or found by
postier.config.resolve_config_dir.
"""

from __future__ import annotations

import getopt
import os
import sys

from postier import log
from postier.config import maincf
from postier.config.maincf import (
    COMMENT_OUT,
    DEFAULT_CONFIG_DIR,
    EDIT,
    MAIN_CF,
    MASTER_CF,
    REMOVE,
    Config,
    builtin_config_dir,
    defaults_config,
    edit_main_cf,
    postfix_names,
    resolve_config_dir,
)
from postier.config.mastercf import (
    format_service,
    match_service,
    parse_service_pattern,
    read_master_cf,
)
from postier.errors import ConfigError

PROG = "postconf"
LINE_LIMIT = 80
INDENT = "    "
SEPARATORS = " \t\r\n"

USAGE = f"""\
usage: postier config [-c DIR] [-d | -n] [-h | -H] [-x] [-f] [-o name=value] [name ...]
       postier config [-c DIR] -e name=value ...    (also -X name ..., -# name ...)
       postier config [-c DIR] -M [-f] [-x] [service[/type] ...]
       postier config [-c DIR] -P [-f] [-x] [service[/type[/name]] ...]

Show or edit the main.cf and master.cf configuration files, like Postfix's
postconf(1).  Without options: print every parameter postier knows with its
effective value ("name = value", sorted).

  -c DIR        configuration directory (default: $POSTIER_CONFIG_DIR, then
                $MAIL_CONFIG, then {DEFAULT_CONFIG_DIR} if it exists, then the
                built-in default configuration)
  -d            print default values instead of main.cf values
  -n            print only the parameters that main.cf sets
  -h            print values only, without "name = "
  -H            print names only
  -x            expand $name references in values
  -f            fold long lines
  -o name=value override a main.cf parameter for this command
  -e            edit main.cf: replace (or append) each name=value; comments
                and the order of other lines are kept
  -X            edit main.cf: remove the named parameters
  -#            edit main.cf: comment out the named parameters
  -M            print master.cf services (all, or those given as name[/type])
  -P            print master.cf -o overrides as service/type/name = value
  --help        this text

Names that neither postier nor Postfix knows get "warning: NAME: unknown
parameter".  After the output, warnings name main.cf lines whose parameter
postier does not support, unused parameters, undefined $name references and
invalid values.
"""


def print_line(text: str, fold: bool) -> str:
    """postconf's pcf_print_line: single spaces between words, optional folding."""
    out: list[str] = []
    line_len = 0
    for word in text.split():
        if line_len > 0:
            if not fold or line_len + len(word) < LINE_LIMIT:
                out.append(" ")
                line_len += 1
            else:
                out.append("\n" + INDENT)
                line_len = len(INDENT)
        out.append(word)
        line_len += len(word)
    return "".join(out) + "\n"


class Fatal(Exception):
    pass


def main(argv: list[str]) -> int:
    log.setup("postconf", progname=PROG, stderr=True)
    for stream in (sys.stdout, sys.stderr):
        # main.cf bytes that are not UTF-8 are kept as surrogates: write them back as is
        try:
            stream.reconfigure(errors="surrogateescape")
        except (AttributeError, ValueError):
            pass
    if "--help" in argv:
        sys.stdout.write(USAGE)
        return 0
    try:
        opts, args = getopt.getopt(argv, "c:dnhHxfeX#MPo:")
    except getopt.GetoptError as e:
        sys.stderr.write(f"{PROG}: fatal: {e}\n{USAGE}")
        return 1
    o = Options()
    try:
        for flag, val in opts:
            o.set(flag, val)
        return run(o, args)
    except (ConfigError, Fatal) as e:
        log.LOG.emit("fatal", str(e))
        return 1
    except OSError as e:
        name = e.filename or ""
        log.LOG.emit("fatal", f"{name}: {e.strerror}" if name else str(e))
        return 1


class Options:
    def __init__(self) -> None:
        self.config_dir: str | None = None
        self.defaults = self.nondefault = False
        self.hide_name = self.hide_value = False
        self.expand = self.fold = False
        self.edit: str | None = None
        self.master = self.master_params = False
        self.overrides: dict[str, str] = {}

    def set(self, flag: str, val: str) -> None:
        if flag == "-c":
            self.config_dir = val
        elif flag == "-d":
            self.defaults = True
        elif flag == "-n":
            self.nondefault = True
        elif flag == "-h":
            self.hide_name = True
        elif flag == "-H":
            self.hide_value = True
        elif flag == "-x":
            self.expand = True
        elif flag == "-f":
            self.fold = True
        elif flag in ("-e", "-X", "-#"):
            mode = {"-e": EDIT, "-X": REMOVE, "-#": COMMENT_OUT}[flag]
            if self.edit and self.edit != mode:
                raise_usage("specify one of -e, -X or -#")
            self.edit = mode
        elif flag == "-M":
            self.master = True
        elif flag == "-P":
            self.master_params = True
        elif flag == "-o":
            try:
                name, value = maincf.split_nameval(val)
            except ValueError as e:
                raise_usage(f'{e}: "{val}"')
            self.overrides[name] = value


def raise_usage(msg: str):
    raise Fatal(msg)


def run(o: Options, args: list[str]) -> int:
    if o.defaults and o.nondefault:
        raise Fatal("specify one of -d or -n")
    config_dir = resolve_config_dir(o.config_dir)
    out = sys.stdout
    if o.edit:
        if not args:
            raise Fatal("-e, -X or -# requires name[=value] arguments")
        if os.path.realpath(config_dir) == os.path.realpath(builtin_config_dir()):
            raise Fatal(f"refusing to edit the built-in default configuration in {config_dir}: "
                        f"copy it to {DEFAULT_CONFIG_DIR} or use -c DIR")
        path = os.path.join(config_dir, MAIN_CF)
        if not os.path.exists(path):
            raise Fatal(f"open {path} for reading: No such file or directory")
        edit_main_cf(path, o.edit, args, warn=log.warning)
        return 0
    if o.master or o.master_params:
        return show_master(o, args, config_dir, out)
    if o.defaults:
        cfg = defaults_config(config_dir)
        cfg._services = _services_or_empty(config_dir)
        return show_params(o, args, cfg, out, defaults=True)
    cfg = maincf.load_config(config_dir)
    if o.overrides:
        cfg = Config(cfg.main, cfg.config_dir, master_path=cfg.master_path,
                     overrides=o.overrides, override_source=("command line", 0))
    for w in cfg.warnings:
        log.warning(w)
    return show_params(o, args, cfg, out, defaults=False)


def _services_or_empty(config_dir: str) -> list:
    path = os.path.join(config_dir, MASTER_CF)
    return read_master_cf(path) if os.path.exists(path) else []


def _is_known(cfg: Config, name: str, user: set[str]) -> bool:
    return cfg.param(name) is not None or name in user or name in postfix_names()


def show_params(o: Options, args: list[str], cfg: Config, out, *, defaults: bool) -> int:
    # master.cf errors are fatal here too (service-defined names depend on it)
    _ = cfg.services
    user: set[str] = set()
    name_warnings: list[str] = []
    if not defaults:
        user, _w = cfg.user_defined()
        name_warnings = cfg.check_names()
    config_dir_set = os.path.normpath(cfg.config_dir) != DEFAULT_CONFIG_DIR
    if args:
        names = args
        if o.nondefault:
            names = [n for n in args if cfg.is_set(n) or (n == "config_directory" and config_dir_set)
                     or not _is_known(cfg, n, user)]
    elif o.nondefault:
        names = sorted(n for n in set(cfg.main.entries) | set(cfg._overrides)
                       if _is_known(cfg, n, user))
        if config_dir_set and "config_directory" not in names:
            names = sorted(names + ["config_directory"])
    else:
        names = cfg.names(include_user=not defaults)
    for name in names:
        if not _is_known(cfg, name, user):
            log.warning(f"{name}: unknown parameter")
            continue
        if defaults:
            value = cfg.default(name)
            if value is None:
                log.warning(f"{name}: unknown parameter")
                continue
        else:
            value = cfg.raw(name)
        if o.expand:
            p = cfg.param(name)
            if p is None or not p.raw:
                value = cfg.expand(value, name=name)
        if o.hide_value:
            out.write(name + "\n")
        elif o.hide_name:
            out.write(print_line(value, o.fold))
        else:
            out.write(print_line(f"{name} = {value}", o.fold))
    out.flush()
    if not defaults:
        for w in name_warnings:
            log.warning(w)
        for e in cfg.validate(raise_errors=False):
            log.warning(str(e))
    return 0


def show_master(o: Options, args: list[str], config_dir: str, out) -> int:
    path = os.path.join(config_dir, MASTER_CF)
    warnings: list[str] = []
    services = read_master_cf(path, warnings)
    for w in warnings:
        log.warning(w)
    cfg = None
    if o.expand:
        cfg = maincf.load_config(config_dir)
        cfg._services = services

    def expander(svc):
        if cfg is None:
            return None
        scoped = cfg.for_service(svc)
        return lambda v: scoped.expand(v)

    if o.master_params:
        return show_master_params(o, args, services, expander, out)
    patterns = []
    for a in args:
        pat = parse_service_pattern(a, 1, 2)
        if pat is None:
            raise Fatal("-M option requires service_name[/type]")
        patterns.append([a, pat, 0])
    for svc in services:
        if not patterns:
            out.write(format_service(svc, o.fold, expander(svc)) + "\n")
            continue
        for req in patterns:
            if match_service(req[1], svc):
                req[2] += 1
                out.write(format_service(svc, o.fold, expander(svc)) + "\n")
    out.flush()
    for raw, _pat, count in patterns:
        if count == 0:
            log.warning(f'unmatched request: "{raw}"')
    return 0


def show_master_params(o: Options, args, services, expander, out) -> int:
    patterns = []
    for a in args:
        pat = parse_service_pattern(a, 1, 3)
        if pat is None:
            raise Fatal("-P option requires service_name[/type[/parameter]]")
        patterns.append([a, pat, 0])

    def show(svc, names):
        exp = expander(svc)
        for n in names:
            value = svc.overrides[n]
            if exp is not None:
                value = exp(value)
            if o.hide_name:
                out.write(print_line(value, o.fold))
            else:
                out.write(print_line(f"{svc.name}/{svc.type}/{n} = {value}", o.fold))

    for svc in services:
        if not svc.overrides:
            continue
        if not patterns:
            show(svc, sorted(svc.overrides))
            continue
        for req in patterns:
            pat = req[1]
            if not match_service(pat, svc):
                continue
            if pat[2] == "*":
                show(svc, sorted(svc.overrides))
                req[2] += 1
            elif pat[2] in svc.overrides:
                show(svc, [pat[2]])
                req[2] += 1
    out.flush()
    for raw, _pat, count in patterns:
        if count == 0:
            log.warning(f'unmatched request: "{raw}"')
    return 0
