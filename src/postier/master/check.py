"""`postier check`: what `postfix check` checks, for postier.

    problems = check(cfg, fix=False)      # Problem(level, text) list
    fatal = any(p.level == "fatal" for p in problems)

Fatal (the mail system would not start; exit status 1):
  - main.cf values that do not validate (every one is reported);
  - master.cf syntax; an inet service whose port is unknown;
  - $mail_owner: no such account, or root (when run as root);
  - a lookup table that cannot be opened (`open database NAME.db: ...`).
Warnings (exit status 0, as Postfix):
  - table warnings (`database NAME.db is older than source file NAME`, bad
    lines of regexp/pcre/cidr tables, ...);
  - master.cf services whose program postier does not have;
  - the queue tree and data_directory (postier.master.privs): `missing
    directory: PATH`, `not owned by postier: PATH`, `not owned by root:
    PATH`, `group or other writable: PATH`; ownership is checked only when
    run as root (without root nothing is ever chown'ed either);
  - `damaged message: corrupt/ID` for each file in the corrupt queue.

`fix=True` (`postier check --fix`, run as root) first creates the missing
directories and gives the tree to its owners, as the master does at every
start; what is still wrong afterwards is reported.

Parameters read: mail_owner, queue_directory, data_directory,
process_id_directory, and every parameter main.cf sets (validation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from postier.errors import PostierError

#: master.cf programs postier runs or provides internally
KNOWN_PROGRAMS = frozenset((
    "smtpd", "qmgr", "oqmgr", "pickup", "cleanup", "trivial-rewrite", "bounce", "flush",
    "proxymap", "proxywrite", "smtp", "lmtp", "local", "virtual", "pipe", "error", "discard",
    "showq", "verify", "anvil", "scache", "postlogd", "tlsmgr"))


@dataclass(frozen=True)
class Problem:
    level: str            # "fatal" or "warning"
    text: str


def check(cfg: Any, fix: bool = False) -> list[Problem]:
    """Every problem found (see the module docstring)."""
    from postier.master import privs
    out: list[Problem] = []
    errors = cfg.validate(raise_errors=False)
    out += [Problem("fatal", str(e)) for e in errors]
    try:
        services = cfg.services
    except PostierError as e:
        return out + [Problem("fatal", str(e))]
    from postier.master.listeners import service_port
    for svc in services:
        prog = os.path.basename(svc.command)
        if svc.type == "inet" and prog == "smtpd":
            try:
                service_port(svc)
            except PostierError as e:
                out.append(Problem("fatal", str(e)))
        elif prog not in KNOWN_PROGRAMS:
            out.append(Problem("warning", f"{svc.path}, line {svc.line}: service {svc.name}: "
                                          f"program {prog} is not supported by postier "
                                          f"(the service is ignored)"))
    if errors:
        return out      # paths and accounts may depend on the broken values
    owner = None
    if os.geteuid() == 0:
        try:
            owner = privs.mail_account(cfg)
        except PostierError as e:
            out.append(Problem("fatal", str(e)))
    out += _tables(cfg)
    if owner is not None:
        queue_user = privs.ROOT if privs.queue_needs_root(services) else owner
        entries = privs.queue_tree(cfg, owner, queue_user)
        if fix:
            try:
                privs.fix_tree(entries)
            except OSError as e:
                out.append(Problem("fatal", f"{e.filename}: {e.strerror}"))
        out += [Problem("warning", t) for t in privs.check_tree(entries)]
    else:
        for path in (cfg.get("queue_directory"),):
            if not os.path.isdir(path):
                if fix:
                    from postier.queue import QUEUE_NAMES
                    for q in QUEUE_NAMES:
                        os.makedirs(os.path.join(path, q), exist_ok=True)
                else:
                    out.append(Problem("warning", f"missing directory: {path}"))
    corrupt = os.path.join(cfg.get("queue_directory"), "corrupt")
    try:
        names = sorted(n for n in os.listdir(corrupt) if not n.startswith("."))
    except OSError:
        names = []
    out += [Problem("warning", f"damaged message: corrupt/{n}") for n in names]
    return out


def _tables(cfg: Any) -> list[Problem]:
    from postier.cli.run_cmd import table_specs
    from postier.maps import open_map
    out: list[Problem] = []
    for spec in table_specs(cfg):
        warns: list[str] = []
        try:
            open_map(spec, warn=warns.append, cache=False)
        except PostierError as e:
            out.append(Problem("fatal", str(e)))
        except OSError as e:
            out.append(Problem("fatal", f"{spec}: {e.strerror}"))
        out += [Problem("warning", w) for w in warns]
    return out
