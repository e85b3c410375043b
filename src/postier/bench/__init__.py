"""`postier bench`: load tools, scenarios and capacity planning.

Modules:

* `source`   -- the load generator (like smtp-source): asyncio + uvloop,
  closed loop (as fast as N sessions go) or open loop at a target msg/s,
  PIPELINING on/off, bodies from .eml files, a unique `X-Bench-Id:` header
  in every message, the latency of every 250, greylisting-style retries.
* `sink`     -- the sink (like smtp-sink): accepts, counts, answers 4xx/5xx
  for a fraction, records the arrival time and bench id of every message.
* `account`  -- end-to-end loss and duplicate counting, latency percentiles.
* `corpus`   -- message bodies: the labelled corpus (labels.tsv) or a small
  synthetic set made at run time; the traffic mix (ham, spam, virus,
  rejected).
* `scenario` -- scenario files (TOML) with file:line errors.
* `limits`   -- constrained hardware: CPU pinning, memory caps (cgroup v2
  memory.max or RLIMIT_AS).
* `procstat` -- CPU time, RSS/PSS and queue size of a process tree.
* `mta`      -- starting postier or a private real Postfix for a scenario.
* `capacity` -- the stepped capacity search and its verdicts.
* `runner`   -- one scenario run, A/B interleaved against Postfix.
* `report`   -- terminal table, JSON, HTML with PNG plots, `bench compare`.
* `progress` -- the progress bar on stderr.

The load tools (source, sink, account, corpus) need nothing but the
package; the scenario runner uses the checkout's tools/ for real Postfix,
clamd and postgrey.  Reads no main.cf parameters itself (scenarios bring
their own main.cf).
"""
