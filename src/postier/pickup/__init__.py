"""Local mail submission: the pickup service and the maildrop queue.

    service = await pickup.start(cfg, loop)   # in `postier run`; None when
    service.on_queued = qmgr.on_queued        # master.cf has no pickup service
    ...
    await service.close()

Postfix's design: sendmail(1) (not set-id) runs postdrop(1), which is
set-gid `postdrop` and writes the message into the group-writable maildrop/
directory; pickup(8) feeds maildrop files to cleanup(8).  postier has no
set-id program.  Instead:

* The running daemon listens on `queue_directory/public/pickup`, a Unix
  stream socket with mode 0666 in a 0755 directory owned by the daemon's
  user.  `postier-sendmail` connects and sends the envelope and the message
  in framed form (postier.pickup.protocol).  The daemon learns who is
  submitting from the kernel (SO_PEERCRED), not from the client: the uid is
  checked against authorized_submit_users, logged (`QUEUEID: uid=UID
  from=<SENDER>`, as pickup(8) logs it) and written into the Received:
  header.  Any user may choose the envelope sender with -f, as with
  Postfix; what a user cannot do is pretend to be another uid.  The
  daemon runs cleanup and commits the queue file to incoming/ (fsync,
  rename, fsync of the directory) before it answers; sendmail exits 0 only
  after that answer.  The client checks the other end too: the process
  serving the socket must run as root or as the owner of the queue
  directory.
* Fallback when the daemon is not running: only root (or the user owning
  the queue directory, for private test instances) may write into
  maildrop/, which is mode 0700.  sendmail run by root writes a postier
  queue file there (the envelope as given, the content before cleanup;
  fsync, rename); the pickup service feeds it through cleanup at its next
  start.  Every other user gets `sendmail: fatal: USER(UID): unable to
  submit mail: the mail system is not running ...` and exit status 75
  (EX_TEMPFAIL), so that the calling program or MUA tries again later.
  Why not a world-writable maildrop (mode 1733)?  Any local user could
  then fill the queue file system, hard-link files of other users
  (including root's) into the queue so that pickup reads them as
  submissions of their owner, plant symlinks, or hand pickup half-written
  files; Postfix closes these holes with the set-gid postdrop program and a
  group-writable directory, which postier deliberately does not have.  A
  socket served by the daemon gives the same guarantee without any set-id
  file.
* `sendmail -bs`, `mailq` (for users other than root), `sendmail -q` and
  `sendmail -bv` also go through the socket (modes smtp, mailq, flush,
  verify), so the daemon applies authorized_mailq_users and
  authorized_flush_users with its own privileges, as Postfix's showq and
  postqueue do.

Modules: protocol (frames and the blocking client side), service (the
server and the maildrop scanner), cleanup (cleanup as pickup uses it: full
names, DSN original recipients, pickup's Received: header), localsmtp
(sendmail -bs), verify (sendmail -bv), users (authorized_*_users, login
and full names).

Parameters read: see postier.pickup.service; the wakeup time of the
master.cf pickup service sets the maildrop scan period (default 60 s).
"""

from __future__ import annotations

import os
from typing import Any

from postier import log


def pickup_service(services: list[Any]) -> Any:
    """The master.cf service whose command is pickup, or None."""
    for svc in services:
        if os.path.basename(svc.command) == "pickup":
            return svc
    return None


async def start(cfg: Any, loop: Any = None) -> Any:
    """Start the pickup service named in master.cf (its -o overrides
    apply); None when master.cf has no pickup service, in which case local
    submission is off (as in Postfix, mail waits in maildrop/)."""
    import asyncio

    from postier.pickup.service import PickupService, PickupSettings
    svc = pickup_service(cfg.services)
    if svc is None:
        log.info("master.cf defines no pickup service: local submission "
                 "(sendmail) is not available")
        return None
    scfg = cfg.for_service(svc)
    try:
        wakeup = svc.wakeup_time[0]
    except ValueError:
        wakeup = 60
    service = PickupService(scfg, PickupSettings.from_config(scfg, wakeup or 60),
                            loop or asyncio.get_running_loop())
    await service.start()
    return service


__all__ = ["pickup_service", "start"]
