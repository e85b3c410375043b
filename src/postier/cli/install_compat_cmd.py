"""`postier install-compat [--prefix DIR] [--force] [--dry-run]`: the sendmail links.

Creates the symbolic links Postfix's Debian package installs, pointing at
this installation's `postier-sendmail` script (which picks its mode from
the name it is run as):

    PREFIX/sbin/sendmail     (sendmail_path)
    PREFIX/bin/mailq         (mailq_path)
    PREFIX/bin/newaliases    (newaliases_path)

PREFIX defaults to /usr.  A link that already points at the script is left
alone (running the command twice changes nothing); a link that points at
another `postier-sendmail` (an older installation) is replaced; any other
file (Postfix's sendmail, a link into another MTA) is refused, naming the
file, unless --force, which replaces links and renames regular files to
NAME.postier-save first.  --dry-run reports what would be done.  Each
change replaces the old entry atomically (a new link is renamed over it).

The command also warns when the script or its Python interpreter cannot be
run by other users (for example a virtualenv under a 0700 home
directory): non-root users could then not submit mail.

Exit status: 0 when every link is in place (or would be), 1 otherwise.

Parameters read: none (the paths are Postfix's package layout).
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import sys
import sysconfig

SCRIPT = "postier-sendmail"
LINKS = (("sbin", "sendmail"), ("bin", "mailq"), ("bin", "newaliases"))
PROG = "postier install-compat"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Install the sendmail, mailq and newaliases links (PREFIX/sbin/sendmail, "
                    "PREFIX/bin/mailq, PREFIX/bin/newaliases) to postier-sendmail, as "
                    "Postfix's package does.")
    p.add_argument("--prefix", default="/usr", metavar="DIR",
                   help="install under DIR/sbin and DIR/bin (default: /usr)")
    p.add_argument("--force", action="store_true",
                   help="replace files that do not belong to postier (regular files are "
                        "kept as NAME.postier-save)")
    p.add_argument("--dry-run", action="store_true", help="only say what would be done")
    p.add_argument("--target", metavar="PATH", help=argparse.SUPPRESS)
    return p


def find_script() -> str | None:
    """The postier-sendmail script of this installation."""
    candidates = [os.path.join(sysconfig.get_path("scripts"), SCRIPT),
                  os.path.join(os.path.dirname(sys.executable), SCRIPT)]
    found = shutil.which(SCRIPT)
    if found:
        candidates.append(found)
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    return None


def _others_can_run(path: str) -> str | None:
    """None when every user can execute `path`, else the reason."""
    real = os.path.realpath(path)
    parts = real.split(os.sep)
    cur = os.sep
    for part in parts[1:-1]:
        cur = os.path.join(cur, part)
        try:
            mode = os.stat(cur).st_mode
        except OSError as e:
            return f"{cur}: {e.strerror}"
        if not mode & stat.S_IXOTH:
            return f"{cur} is mode {stat.S_IMODE(mode):04o}"
    try:
        mode = os.stat(real).st_mode
    except OSError as e:
        return f"{real}: {e.strerror}"
    if not mode & stat.S_IXOTH:
        return f"{real} is mode {stat.S_IMODE(mode):04o}"
    return None


def _interpreter(script: str) -> str | None:
    try:
        with open(script, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return words[0] if words else None


def _is_postier_link(path: str) -> bool:
    try:
        return os.path.basename(os.readlink(path)) == SCRIPT
    except OSError:
        return False


def install(prefix: str, target: str, force: bool = False, dry_run: bool = False,
            out=print, err=None) -> int:
    """Create the links; returns the exit status."""
    def warn(text: str) -> None:
        (err or (lambda t: sys.stderr.write(t + "\n")))(f"{PROG}: {text}")

    status = 0
    for sub, name in LINKS:
        directory = os.path.join(prefix, sub)
        path = os.path.join(directory, name)
        action = "created"
        if os.path.islink(path):
            if os.readlink(path) == target:
                out(f"{path} -> {target} (unchanged)")
                continue
            if _is_postier_link(path):
                action = "updated"
            elif force:
                action = "replaced"
            else:
                warn(f"refusing to replace {path} (a link to {os.readlink(path)}, not to "
                     f"postier); use --force")
                status = 1
                continue
        elif os.path.lexists(path):
            if os.path.isdir(path):
                warn(f"refusing to replace {path}: it is a directory")
                status = 1
                continue
            if not force:
                warn(f"refusing to replace {path} (a file that does not belong to postier); "
                     f"use --force")
                status = 1
                continue
            action = f"replaced; the old file is {path}.postier-save"
        if dry_run:
            out(f"{path} -> {target} (would be {action.split(';')[0]})")
            continue
        try:
            os.makedirs(directory, exist_ok=True)
            if os.path.lexists(path) and not os.path.islink(path):
                os.rename(path, path + ".postier-save")
            tmp = os.path.join(directory, f".{name}.postier-tmp")
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.rename(tmp, path)
        except OSError as e:
            warn(f"{path}: {e.strerror}")
            status = 1
            continue
        out(f"{path} -> {target} ({action})")
    return status


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    target = args.target or find_script()
    if target is None:
        sys.stderr.write(f"{PROG}: fatal: cannot find the {SCRIPT} script of this "
                         "installation (is postier installed with pip?)\n")
        return 1
    status = install(args.prefix, target, args.force, args.dry_run)
    for what in (target, _interpreter(target)):
        if what:
            why = _others_can_run(what)
            if why:
                sys.stderr.write(f"{PROG}: warning: {what} cannot be run by other users "
                                 f"({why}): only root will be able to send mail\n")
    return status
