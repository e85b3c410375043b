"""The queue manager: Postfix's qmgr(8), plus trivial-rewrite's resolve and bounce(8).

    qm = QueueManager(cfg)          # in `postier run`'s event loop
    await qm.start()                # recovery, public/qmgr, first scans
    smtpd_server.on_queued = qm.on_queued
    ...
    await qm.stop()

Queues are directories under $queue_directory: incoming, active, deferred,
hold, corrupt (maildrop is for a later pickup service), and per-message
logs in defer/, bounce/, trace/ (postier.queue.file).

Design (one asyncio task per delivery; no processes)
----------------------------------------------------
* Start: a second queue manager on the same queue directory is refused
  (something already accepts connections on public/qmgr).  Then recovery
  (`recover_queues`): everything in active/ goes back to
  incoming/ (delivery is at-least-once), unfinished `.ID.tmp` files that no
  250 acknowledged are removed.  Then incoming/ is scanned, and deferred/
  for files whose time stamp has come.
* New mail: smtpd calls `on_queued(ID)` after the fsync'd 250; the ID goes
  straight to the feed (no directory scan).  Other writers (notices, the
  queue tools) rename a file into incoming/ and send `trigger I`.
* Feed: while fewer than $qmgr_message_active_limit messages (and
  $qmgr_message_recipient_limit recipients) are in memory, the next ID
  (alternating between the incoming and deferred feeds) is renamed into
  active/, its envelope read (a damaged file goes to corrupt/ with
  `warning: saving corrupt file "ID" from queue "active" to queue
  "corrupt"`), a `hold` verdict moves it to hold/, and
  `ID: from=<s>, size=N, nrcpt=N (queue active)` is logged.
* Resolve (postier.delivery.resolve): each recipient not yet done gets
  (transport, nexthop); content_filter and redirect override as in
  Postfix; local mail to $double_bounce_sender is discarded; resolver
  failures go to `retry` ("4.3.0 address resolver failure"), bad syntax to
  `error` ("5.1.3 bad address syntax"); $defer_transports to `retry`
  ("4.3.2 deferred transport") unless the message is being flushed.
* Schedule (postier.qmgr.scheduler): per-destination queues keyed by
  (transport, nexthop) - (transport, localpart@nexthop) when the transport's
  recipient limit is 1 - with slow start, positive/negative feedback,
  failed cohorts, and entries of at most
  `<transport>_destination_recipient_limit` recipients.  A transport runs
  at most its master.cf maxproc ($default_process_limit) deliveries.  A
  dead destination defers its queued and new recipients with "delivery
  temporarily suspended: REASON" for $minimal_backoff_time; a transport
  without a delivery agent (master.cf lacks it, or no agent for its
  program, e.g. local/virtual/pipe before they exist) defers with "mail
  transport unavailable" for $transport_retry_time.
* Deliver: `postier.delivery.AGENTS[program](DeliveryRequest)`; every
  result is logged as `ID: to=<..>, [orig_to=<..>, ]relay=..,
  [conn_use=N, ]delay=.., delays=a/b/c/d, dsn=.., status=sent|deferred|bounced (..)`
  with the program's name as log tag (or master.cf `-o syslog_name`).
  soft_bounce turns bounced into deferred (5.x.x -> 4.x.x).  The error,
  retry and discard programs have built-in stand-ins when no agent is
  registered for them.
* Finish (when the last entry of a message returns):
  - bounced recipients -> non-delivery notices (postier.delivery.bounce,
    queued through incoming/ with `ID: sender non-delivery notification:
    NEWID` logged by `bounce`); NOTIFY=SUCCESS deliveries -> success
    notices;
  - nothing left: unlink the file (no fsync needed: a crash before the
    unlink only means a second delivery), `ID: removed`;
  - deferred recipients left: past $maximal_queue_lifetime
    ($bounce_queue_lifetime for the null sender) -> `ID: from=<s>,
    status=expired, returned to sender` and a failure notice from the
    defer records; else past $delay_warning_time (once) -> a delay notice;
    then the `done` marks are appended to the file and fsync'd, the defer
    log is written, the file's mtime is set to now + backoff
    (max($minimal_backoff_time, min($maximal_backoff_time, age))) and it is
    renamed into deferred/.
* Deferred scans every $queue_run_delay (with +-5 % jitter) pick files
  whose mtime has come; incoming/ is rescanned at the same time (lost
  triggers).  The hold queue is never scanned.

Control (public/qmgr, see postier.qmgr.control for the wire format)
--------------------------------------------------------------------
`flush` (postqueue -f, sendmail -q, `postier flush`): forget dead
destinations, scan deferred/ ignoring time stamps, scan incoming/.
`trigger LETTERS`: Postfix's codes I, D, A, F, W.

Protocol for the queue tools while the queue manager runs (hold, release,
requeue, delete):
  * incoming/, deferred/, hold/, corrupt/ belong to the tools: move a file
    with rename(2) inside queue_directory, fsync the target directory,
    delete it with unlink(2) together with defer/ID, bounce/ID and
    trace/ID.  The queue manager tolerates a file vanishing under it
    (`warning: ID: remove active/ID: No such file or directory`).
  * active/ belongs to the queue manager: send `hold ID`, `delete ID` or
    `requeue ID` on public/qmgr (only root or the daemon's user may);
    it stops starting new deliveries for the message, waits for those in
    progress, records which recipients are done (appended, fsync'd), then
    moves the file to hold/ or incoming/ (or deletes it) and answers with
    the queue it went to.  When no queue manager answers, the tool moves
    the file itself (nothing owns active/ then; the next start would move
    it back to incoming/).
  * Release from hold: rename hold/ID to deferred/ID with a current mtime
    (or into incoming/), then `trigger D` / `flush` for delivery now.
  * Requeue: rename into incoming/, then `trigger I`.

Parameters read: queue_directory, qmgr_message_active_limit,
qmgr_message_recipient_limit, minimal_backoff_time, maximal_backoff_time,
queue_run_delay, maximal_queue_lifetime, bounce_queue_lifetime,
delay_warning_time, soft_bounce, defer_transports, default_filter_nexthop,
myhostname, double_bounce_sender, transport_retry_time,
delay_logging_resolution_limit, default_process_limit, plus what
postier.qmgr.scheduler, postier.delivery.resolve and
postier.delivery.bounce read.
"""

from __future__ import annotations

from postier.qmgr.control import qmgr_flush, qmgr_request, qmgr_running, qmgr_trigger
from postier.qmgr.manager import QueueManager

__all__ = ["QueueManager", "qmgr_flush", "qmgr_request", "qmgr_running", "qmgr_trigger"]
