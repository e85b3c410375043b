"""Verdicts: what the content findings mean for each recipient and for the SMTP reply.

amavisd-new's model, for one message:

* Findings (`Findings`): virus names (or "every scanner failed"), banned
  names, a spam score with its rule hits, bad-header reasons.
* Contents categories in priority order: virus > banned > spam > bad_header.
  A category applies to a recipient when it was found and the recipient does
  not bypass it (`content_bypass_maps`) -- for spam: when the score reaches
  `spam_kill_level` and the sender is not whitelisted for that recipient
  (`content_whitelist_maps`).
* Each category has a destiny (`final_virus_destiny`,
  `final_banned_destiny`, `final_spam_destiny`, `final_bad_header_destiny`):
  pass, reject or discard.  A recipient is blocked by the first applying
  category whose destiny is not pass.
* One message, one reply (smtpd before the 250, or `postier filter` in SMTP
  mode):

  - every recipient blocked, at least one by a reject destiny ->
    `554 5.7.0 Reject, id=QUEUEID - VIRUS: Eicar-Signature` (the highest
    category that blocks);
  - every recipient blocked by discard -> `250 2.7.0 Ok, discarded,
    id=QUEUEID - VIRUS: ...`, nothing queued;
  - some blocked, some not -> the message passes to the others; blocked
    recipients are dropped from the envelope (postier never sends a bounce
    itself: no backscatter);
  - every virus scanner failed and `av_failure_action = defer` (the
    default) -> `451 4.5.0 Error in processing, id=QUEUEID, virus_scan FAILED:
    AV: ALL VIRUS SCANNERS FAILED` -- unless the message is rejected anyway;
  - otherwise pass, with headers (below).

  `postier filter --lmtp` answers per recipient (`Verdict.per_recipient`).
* Quarantine: when `quarantine_directory` is set, a message blocked for at
  least one recipient is written there, one file per message
  (`virus-QUEUEID`, `banned-`, `spam-`, `badh-`, as amavisd names them),
  mode 0600, fsync'd before the reply: the envelope as `X-Envelope-From:`,
  `X-Envelope-To:`, `X-Quarantine-ID:` and `X-Postier-Alert:` headers,
  then the message.  The directory must be writable by $mail_owner (smtpd's
  account); when the file cannot be written, a message that would have been
  discarded is deferred instead (postier.content.scan).
* Headers on a passed message, in this order: `X-Postier-Alert:` (a virus
  or banned name passed because its destiny is pass, BAD HEADER SECTION,
  UNCHECKED when scanning failed and av_failure_action = pass),
  `X-Virus-Scanned: postier at $mydomain` (when a scanner answered), and at
  or above `spam_tag_level`: `X-Spam-Flag: YES|NO` (YES from
  `spam_tag2_level`), `X-Spam-Score: 7.1`, `X-Spam-Level: *******`,
  `X-Spam-Status: Yes, score=7.1 tagged_above=2 required=6.31
  tests=[RULE=1.2, ...]` (amavisd's formats; numbers as amavisd prints
  them).  From `spam_tag2_level` on, `spam_subject_tag` is put in front of
  the Subject.  Incoming X-Spam-* headers are removed when spam headers
  are added.

Per-recipient maps (looked up with the access(5) search order of a
recipient address: user+ext@domain, user@domain, domain, parent domains,
user+ext@, user@):

* `content_bypass_maps`: the value names the checks the recipient does not
  want: `virus`, `banned`, `spam`, `bad_header` (comma or space separated),
  or `OK`/`yes`/`all` for all of them; `DUNNO`/`no` for none.  A check that
  every recipient bypasses is not run at all.
* `content_whitelist_maps`: the value lists senders whose mail is never
  treated as spam for that recipient (`user@domain`, `@domain` or `domain`,
  subdomains included), or `OK`/`yes`/`all` for every sender.

Parameters read (through postier.content.scan): final_virus_destiny,
final_banned_destiny, final_spam_destiny, final_bad_header_destiny,
spam_tag_level, spam_tag2_level, spam_kill_level, spam_subject_tag,
quarantine_directory, content_bypass_maps, content_whitelist_maps,
av_failure_action, mydomain, recipient_delimiter.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from postier import log
from postier.errors import ConfigError, MapError, Reply

CATEGORIES = ("virus", "banned", "spam", "bad_header")
DESTINIES = ("pass", "reject", "discard")
ALL_CHECKS = frozenset(CATEGORIES)
QUARANTINE_PREFIX = {"virus": "virus", "banned": "banned", "spam": "spam", "bad_header": "badh"}
REPLY_LABEL = {"virus": "VIRUS", "banned": "BANNED", "spam": "SPAM",
               "bad_header": "BAD HEADER SECTION"}
ALERT_LABEL = {"virus": "INFECTED", "banned": "BANNED", "bad_header": "BAD HEADER SECTION"}
SPAM_HEADERS = ("x-spam-flag", "x-spam-score", "x-spam-level", "x-spam-status",
                "x-spam-report", "x-spam-checker-version")


def number(x: float) -> str:
    """A score as amavisd prints it: 0+sprintf("%.3f") -> 7.1, 2, -0.5."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def parse_level(name: str, text: str) -> float | None:
    """A spam level parameter: a number, or empty for "none"."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"bad numerical configuration: {name} = {text} "
                          f"(expected a number like 6.31, or empty)") from None


@dataclass
class SpamResult:
    score: float
    hits: list[tuple[str, float]] = field(default_factory=list)
    required: float | None = None

    @classmethod
    def from_engine(cls, v: Any) -> SpamResult:
        """From the spam engine's verdict (score, hits, required); hits may be
        a {name: score} dict, (name, score) pairs or bare names."""
        raw = getattr(v, "hits", None) or []
        hits: list[tuple[str, float]] = []
        items = raw.items() if isinstance(raw, dict) else raw
        for item in items:
            if isinstance(item, (tuple, list)) and len(item) >= 2:
                hits.append((str(item[0]), float(item[1])))
            elif hasattr(item, "name"):
                hits.append((str(item.name), float(getattr(item, "score", 0.0))))
            else:
                hits.append((str(item), 0.0))
        req = getattr(v, "required", None)
        return cls(float(getattr(v, "score", 0.0)), hits, float(req) if req is not None else None)


@dataclass
class Findings:
    """What the scanners found."""

    av_status: str = "skipped"                       # skipped | clean | infected | failed
    viruses: list[str] = field(default_factory=list)
    av_failures: list[str] = field(default_factory=list)
    banned: list[Any] = field(default_factory=list)  # postier.content.banned.BannedHit
    spam: SpamResult | None = None
    bad_header: list[str] = field(default_factory=list)


@dataclass
class RecipientPolicy:
    bypass: frozenset[str] = frozenset()
    whitelist_all: bool = False
    whitelist: tuple[str, ...] = ()

    def whitelisted(self, sender: str) -> bool:
        if self.whitelist_all:
            return True
        if not self.whitelist or not sender:
            return False
        s = sender.lower()
        domain = s.rpartition("@")[2]
        for w in self.whitelist:
            if "@" in w and not w.startswith("@"):
                if s == w:
                    return True
                continue
            d = w.lstrip("@")
            if domain == d or domain.endswith("." + d):
                return True
        return False


@dataclass
class ContentPolicy:
    """The verdict parameters, typed once per configuration."""

    destinies: dict[str, str] = field(default_factory=lambda: {
        "virus": "reject", "banned": "reject", "spam": "pass", "bad_header": "pass"})
    tag_level: float | None = 2.0
    tag2_level: float | None = 6.31
    kill_level: float | None = 6.31
    subject_tag: str = "***SPAM***"
    quarantine_directory: str = ""
    av_failure_action: str = "defer"
    mydomain: str = "localdomain"
    bypass_maps: list[Any] = field(default_factory=list)
    whitelist_maps: list[Any] = field(default_factory=list)
    search: Any = None                  # postier.maps.access.SearchSettings

    @classmethod
    def from_config(cls, cfg: Any) -> ContentPolicy:
        from postier.maps import open_map
        from postier.maps.access import SearchSettings
        dest = {}
        for cat in CATEGORIES:
            value = str(cfg.get(f"final_{cat}_destiny")).strip().lower()
            if value not in DESTINIES:
                raise ConfigError(f"bad parameter value: 'final_{cat}_destiny = {value}' "
                                  f"(expected one of: pass, reject, discard)")
            dest[cat] = value

        def maps(name: str) -> list[Any]:
            out = []
            for spec in cfg.get_list(name):
                try:
                    out.append(open_map(spec))
                except MapError as e:
                    raise ConfigError(f"{name}: {e}") from None
            return out

        def text(name: str) -> str:
            return str(cfg.get_str(name))

        failure = text("av_failure_action").strip().lower()
        if failure not in ("defer", "pass"):
            raise ConfigError(f"bad parameter value: 'av_failure_action = {failure}' "
                              f"(expected one of: defer, pass)")
        return cls(
            destinies=dest,
            tag_level=parse_level("spam_tag_level", text("spam_tag_level")),
            tag2_level=parse_level("spam_tag2_level", text("spam_tag2_level")),
            kill_level=parse_level("spam_kill_level", text("spam_kill_level")),
            subject_tag=text("spam_subject_tag"),
            quarantine_directory=text("quarantine_directory").strip(),
            av_failure_action=failure,
            mydomain=text("mydomain"),
            bypass_maps=maps("content_bypass_maps"),
            whitelist_maps=maps("content_whitelist_maps"),
            search=SearchSettings(delimiters=text("recipient_delimiter")),
        )

    # ------------------------------------------------------------ recipients
    def _lookup(self, tables: list[Any], address: str) -> str | None:
        from postier.maps.access import first_match
        keys = self.search.recipient(address) if self.search is not None else [address]
        for t in tables:
            try:
                hit = first_match(t, keys)
            except MapError as e:
                log.warning(f"content maps: {e}")
                continue
            if hit is not None:
                return hit[1]
        return None

    def recipient(self, address: str) -> RecipientPolicy:
        bypass: set[str] = set()
        wl_all = False
        wl: list[str] = []
        if self.bypass_maps:
            value = self._lookup(self.bypass_maps, address)
            for word in re.split(r"[\s,]+", value or ""):
                w = word.lower()
                if not w or w in ("dunno", "no"):
                    continue
                if w in ("ok", "yes", "all", "permit"):
                    bypass |= ALL_CHECKS
                elif w in ALL_CHECKS:
                    bypass.add(w)
                elif w == "bad-header":
                    bypass.add("bad_header")
                else:
                    log.warning(f"content_bypass_maps: unknown check name \"{word}\" for "
                                f"<{address}> (expected virus, banned, spam, bad_header or OK)")
        if self.whitelist_maps:
            value = self._lookup(self.whitelist_maps, address)
            for word in re.split(r"[\s,]+", value or ""):
                w = word.lower()
                if not w or w in ("dunno", "no"):
                    continue
                if w in ("ok", "yes", "all", "permit"):
                    wl_all = True
                else:
                    wl.append(w)
        return RecipientPolicy(frozenset(bypass), wl_all, tuple(wl))

    def spam_is_spam(self, spam: SpamResult | None) -> bool:
        return spam is not None and self.kill_level is not None and spam.score >= self.kill_level


@dataclass
class Verdict:
    """The outcome for one message (see the module docstring)."""

    action: str = "pass"                  # pass | reject | discard | defer
    category: str = "clean"               # clean | virus | banned | spam | bad_header | unchecked
    reply: Reply | None = None            # for reject, discard and defer
    headers: list[str] = field(default_factory=list)      # header lines to add (no line end)
    subject_tag: str = ""                 # put in front of the Subject (pass)
    remove_headers: tuple[str, ...] = ()  # lower-case header names to remove (pass)
    blocked: dict[str, str] = field(default_factory=dict)  # recipient -> category (dropped)
    per_recipient: dict[str, Reply] = field(default_factory=dict)   # for LMTP
    quarantine: str = ""                  # the quarantine file written, if any
    reason: str = ""                      # "VIRUS: Eicar-Signature"
    findings: Findings = field(default_factory=Findings)
    queue_id: str = ""
    elapsed: float = 0.0

    @property
    def passed(self) -> bool:
        return self.action == "pass"


def category_reason(cat: str, f: Findings) -> str:
    if cat == "virus":
        return "VIRUS: " + ", ".join(_printable(v) for v in f.viruses)
    if cat == "banned":
        names = []
        for h in f.banned:
            t = h.short()
            if t not in names:
                names.append(t)
        return "BANNED: " + ", ".join(names[:5])
    if cat == "spam":
        return f"SPAM, score={number(f.spam.score) if f.spam else '?'}"
    if cat == "bad_header":
        return "BAD HEADER SECTION, " + _printable(f.bad_header[0] if f.bad_header else "")
    return cat.upper()


def _printable(text: str, limit: int = 200) -> str:
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def decide(f: Findings, sender: str, recipients: list[str], policy: ContentPolicy,
           queue_id: str, policies: dict[str, RecipientPolicy] | None = None) -> Verdict:
    """Turn findings into the verdict for this envelope."""
    if policies is None:
        policies = {r: policy.recipient(r) for r in recipients}
    found = {
        "virus": f.av_status == "infected" and bool(f.viruses),
        "banned": bool(f.banned),
        "spam": policy.spam_is_spam(f.spam),
        "bad_header": bool(f.bad_header),
    }
    blocking: dict[str, tuple[str, str]] = {}          # rcpt -> (category, destiny)
    for r in recipients:
        rp = policies.get(r) or RecipientPolicy()
        for cat in CATEGORIES:
            if not found[cat] or cat in rp.bypass:
                continue
            if cat == "spam" and rp.whitelisted(sender):
                continue
            dest = policy.destinies[cat]
            if dest != "pass":
                blocking[r] = (cat, dest)
                break
    v = Verdict(findings=f, queue_id=queue_id)
    per: dict[str, Reply] = {}
    for r in recipients:
        if r in blocking:
            cat, dest = blocking[r]
            per[r] = _block_reply(cat, dest, f, queue_id)
    receivers = [r for r in recipients if r not in blocking]
    av_needed = any("virus" not in (policies.get(r) or RecipientPolicy()).bypass
                    for r in receivers)
    av_failed = f.av_status == "failed" and av_needed
    if recipients and not receivers:
        cats = [blocking[r] for r in recipients]
        top = min(cats, key=lambda c: (CATEGORIES.index(c[0]), c[1] != "reject"))
        dest = "reject" if any(d == "reject" for _, d in cats) else "discard"
        cat = top[0] if dest == top[1] else next(c for c, d in cats if d == dest)
        v.action, v.category = dest, cat
        v.reason = category_reason(cat, f)
        v.reply = _block_reply(cat, dest, f, queue_id)
        v.blocked = {r: blocking[r][0] for r in recipients}
        v.per_recipient = per
        return v
    if av_failed and policy.av_failure_action == "defer":
        v.action, v.category = "defer", "unchecked"
        v.reason = "virus_scan FAILED: AV: ALL VIRUS SCANNERS FAILED"
        v.reply = Reply(451, "4.5.0", f"Error in processing, id={queue_id}, {v.reason}")
        v.per_recipient = {r: v.reply for r in recipients}
        return v
    v.blocked = {r: blocking[r][0] for r in blocking}
    v.per_recipient = per
    if v.blocked:
        cat = min((c for c, _ in blocking.values()), key=CATEGORIES.index)
        v.category, v.reason = cat, category_reason(cat, f)
    else:
        for cat in CATEGORIES:
            if found[cat]:
                v.category, v.reason = cat, category_reason(cat, f)
                break
        else:
            if av_failed:
                v.category, v.reason = "unchecked", "UNCHECKED"
    _pass_headers(v, f, policy, receivers, policies, sender, found, av_failed)
    ok = Reply(250, "2.0.0", "Ok")
    for r in receivers:
        per[r] = ok
    return v


def _block_reply(cat: str, dest: str, f: Findings, queue_id: str) -> Reply:
    reason = category_reason(cat, f)
    if dest == "discard":
        return Reply(250, "2.7.0", f"Ok, discarded, id={queue_id} - {reason}")
    return Reply(554, "5.7.0", f"Reject, id={queue_id} - {reason}")


def _pass_headers(v: Verdict, f: Findings, policy: ContentPolicy, receivers: list[str],
                  policies: dict[str, RecipientPolicy], sender: str, found: dict[str, bool],
                  av_failed: bool) -> None:
    h: list[str] = []
    if found["virus"]:
        h.append("X-Postier-Alert: INFECTED, message contains virus: "
                 + ", ".join(_printable(x) for x in f.viruses))
    if found["banned"]:
        h.append("X-Postier-Alert: BANNED, message contains "
                 + category_reason("banned", f)[len("BANNED: "):])
    if found["bad_header"]:
        h.append("X-Postier-Alert: " + category_reason("bad_header", f))
    if av_failed:
        h.append("X-Postier-Alert: UNCHECKED, virus scan failed")
    if f.av_status in ("clean", "infected"):
        h.append(f"X-Virus-Scanned: postier at {policy.mydomain}")
    spam = f.spam
    if spam is not None and policy.tag_level is not None and spam.score >= policy.tag_level:
        wants = [r for r in receivers
                 if "spam" not in (policies.get(r) or RecipientPolicy()).bypass]
        if wants or not receivers:
            is_spam = policy.tag2_level is not None and spam.score >= policy.tag2_level
            whitelisted = bool(wants) and all(
                (policies.get(r) or RecipientPolicy()).whitelisted(sender) for r in wants)
            if whitelisted:
                is_spam = False
            h += spam_headers(spam, policy, is_spam)
            v.remove_headers = SPAM_HEADERS
            if is_spam and policy.subject_tag:
                v.subject_tag = policy.subject_tag
    v.headers = h


def spam_headers(spam: SpamResult, policy: ContentPolicy, is_spam: bool) -> list[str]:
    score = spam.score
    level = "*" * min(64, int(score)) if score >= 1 else ""
    required = policy.tag2_level if policy.tag2_level is not None else spam.required
    tests = ", ".join(f"{n}={number(s)}" for n, s in sorted(set(spam.hits)))
    status = (f"X-Spam-Status: {'Yes' if is_spam else 'No'}, score={number(score)}"
              f" tagged_above={number(policy.tag_level) if policy.tag_level is not None else '-'}"
              f" required={number(required) if required is not None else '-'}"
              f" tests=[{tests}]")
    return [f"X-Spam-Flag: {'YES' if is_spam else 'NO'}",
            f"X-Spam-Score: {number(score)}",
            f"X-Spam-Level: {level}" if level else "X-Spam-Level:",
            fold(status)]


def fold(line: str, width: int = 78) -> str:
    """Fold a header line at spaces (continuation lines start with a TAB)."""
    if len(line) <= width:
        return line
    out: list[str] = []
    cur = ""
    for word in line.split(" "):
        cand = f"{cur} {word}" if cur else word
        if len(cand) > width and cur:
            out.append(cur)
            cur = word
        else:
            cur = cand
    out.append(cur)
    return "\n\t".join(out)


# --------------------------------------------------------------------------- quarantine

def quarantine(directory: str, v: Verdict, sender: str, recipients: list[str],
               source: Any) -> str:
    """Write the message into `directory` as one file (mode 0600, fsync'd);
    return its path.  `source`: a MessageSource (postier.content.antivirus)."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    prefix = QUARANTINE_PREFIX.get(v.category, "other")
    base = os.path.join(directory, f"{prefix}-{v.queue_id or int(time.time())}")
    path, n = base, 0
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            n += 1
            path = f"{base}.{n}"
    try:
        head = [f"X-Envelope-From: <{sender}>",
                "X-Envelope-To: " + ",\n ".join(f"<{r}>" for r in recipients),
                f"X-Quarantine-ID: <{os.path.basename(path)}>",
                f"X-Postier-Alert: {v.reason or v.category}"]
        os.write(fd, ("\n".join(head) + "\n").encode("utf-8", "surrogateescape"))
        pos = 0
        while pos < source.size:
            data = source.read(pos, 1 << 20)
            if not data:
                break
            view = memoryview(data)
            while view:
                k = os.write(fd, view)
                view = view[k:]
            pos += len(data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return path
