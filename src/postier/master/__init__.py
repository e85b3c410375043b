"""The master process: Postfix's master(8), and what `postfix start/stop/...` drive.

    from postier.master import Master
    code = Master(cfg, foreground=True, log_kw=...).serve()   # postier run
    # postier start: the same, in a daemonized process (postier.master.daemon)

Process model
-------------
One master process and its children, all forked from it (no exec: the
children inherit the already imported code, the open lookup tables and the
smtpd settings and restriction engines the master built, with the garbage
collector's view frozen before the fork so that those pages stay shared):

* **master** (root): reads main.cf/master.cf, opens every table, binds the
  listening sockets of master.cf's inet smtpd services (port 25 needs
  root), creates the shared anvil table and the new-mail socket pair, holds
  the locked pid file queue_directory/pid/master.pid, forks and supervises
  the children, restarts the ones that die (with back-off, see
  postier.master.supervisor), reloads on SIGHUP, stops on SIGTERM/SIGINT.
  It runs no event loop and serves no client.
* **smtpd workers**, per inet smtpd service: `min(maxproc, N)` processes,
  where N is $smtpd_worker_processes (default 0 = the number of CPUs this
  process may run on) and maxproc is master.cf's field ("-" =
  $default_process_limit, 0 = no limit).  Postfix runs one smtpd process
  per SMTP session (default_process_limit = 100 of them); a postier worker
  is an asyncio process serving any number of sessions, so more workers
  than CPUs only cost memory.  All workers of a service accept on the same
  inherited listening sockets (the kernel hands each connection to one of
  them; a reload needs no socket hand-over, so no connection waiting in the
  backlog is ever dropped).  Connection count and rate limits
  (smtpd_client_connection_count_limit / _rate_limit) are counted across
  all workers in shared memory (postier.master.anvil).  After a message's
  250, the worker sends its queue ID to the queue process
  (postier.master.notify): delivery starts at once, as in one process.
* **queue process** (one, when master.cf has a qmgr or pickup service): the
  queue manager with the delivery agents as asyncio tasks (postier.qmgr,
  postier.delivery), and the pickup service (public/pickup for sendmail,
  mailq, sendmail -bs).  It is restarted (after a graceful stop) on reload;
  the new one starts only after the old one has exited, so two queue
  managers never share the queue.

Privilege model
---------------
When started as root (as `postier start` and port 25 need):

* The master stays root (it binds new ports on reload and forks root
  children).
* smtpd workers switch to $mail_owner (default `postier`, a system account
  that tools/setup.sh creates; `postier` and not `postfix`, so that postier
  never shares an account with a Postfix on the same host) after the fork,
  once their settings are built and their tables open -- Postfix's
  "pre-jail" initialization -- and the maillog file is open.  They write
  queue files into incoming/ as that account.
* The queue process keeps root only when master.cf has local, virtual or
  pipe services with unpriv = n (or no delivery service at all, which means
  Postfix's defaults, local among them): those agents run each mailbox
  write or command in a child that switches to the recipient (see
  postier.delivery.runas).  Otherwise it switches to $mail_owner too.
* The queue tree and data_directory are created and given to their owners
  by the master at every start (as Postfix's post-install create-missing and
  set-permissions would): incoming, active, deferred, hold, corrupt, bounce,
  defer, trace and data_directory (recursively) to $mail_owner, public and
  maildrop to the queue process's account, queue_directory itself and pid/
  to root (postier.master.privs).  `postier check` reports what is not
  so; `postier check --fix` fixes it without starting anything.
* If $mail_owner cannot reach what a process needs (a queue directory below
  a directory it may not enter, e.g. a private temporary directory), that
  process keeps root and the master logs a warning naming the path: mail
  keeps flowing, and `postier check` tells the administrator what to fix.
* Without root (tests, a private instance) every process runs as the
  invoking user and nothing is chown'ed.

Every child sets PR_SET_PDEATHSIG (SIGKILL) after its privilege drop: when
the master is killed (kill -9), its children go with it, so a restarted
master can bind the ports again at once and never meets a second queue
manager.

Signals and logs (Postfix's wording, tag `postier/master`)
-----------------------------------------------------------
* start: `daemon started -- version 0.1.0, configuration /etc/postier...`
  then, once every worker accepts, `smtpd listening on 127.0.0.1:25`.
* SIGHUP: `reload -- version 0.1.0, configuration /etc/postier`.  main.cf,
  master.cf and the tables are read again (a broken configuration is
  refused with `warning: reload failed, configuration not changed: ...` and
  the old one stays); new workers start with the new configuration on the
  same listening sockets; the old ones stop accepting at once and exit when
  their sessions end (established sessions and accepted mail are never
  dropped); the queue process is stopped gracefully and started again.
* SIGTERM/SIGINT: `terminating on signal 15`; the listening sockets close;
  workers finish their sessions for at most $smtpd_drain_time and then
  close them; the queue manager finishes in-flight deliveries for 5 s and
  leaves the rest in active/ for the next start's recovery; the master
  exits after its last child, removing the pid file.
* a child's death: `warning: process smtpd pid N exit status 1`, `warning:
  process smtpd pid N killed by signal 9`, then a restart (immediately the
  first time, with growing delays if it keeps dying, `warning: smtpd: bad
  command startup -- throttling` when it dies before it ever got ready).

Modules: supervisor (Master, Backoff), workers (the children), listeners,
anvil, notify, pidfile, privs, daemon (postier start's double fork), check
(postier check).

Parameters read: smtpd_worker_processes, smtpd_drain_time,
default_process_limit, service_throttle_time, master_service_disable,
mail_owner, queue_directory, data_directory, process_id_directory,
inet_interfaces, inet_protocols, maillog_file, syslog_name,
syslog_facility; and everything smtpd, the queue manager and pickup read.
"""

from __future__ import annotations

from postier.master.supervisor import Backoff, Master, worker_count

__all__ = ["Backoff", "Master", "worker_count"]
