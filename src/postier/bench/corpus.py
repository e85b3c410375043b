"""Message bodies and the traffic mix of a scenario.

    corpus = Corpus.load("/work/shared/corpus")      # or Corpus.synthetic(seed)
    mix = TrafficMix({"ham": 0.6, "spam": 0.3, "virus": 0.02, "rejected": 0.08},
                     corpus, seed=7, greylist_new_fraction=0.3)
    msgs = mix.messages(100, first_seq=1)            # [Outgoing, ...]

The corpus is a directory with `labels.tsv` (`path<TAB>label[<TAB>source]`,
paths relative to the directory, labels `ham`/`spam`), as in the project's
shared corpus.  Nothing from it is copied anywhere: messages are read from
it when a mix picks them, so message sizes follow the corpus.  When no
corpus is given or found, `Corpus.synthetic()` makes a small set at run
time (ham of a few KB, spam with the words the lab's header/body checks
look for), sizes drawn from a log-normal around 3 KB.

Traffic classes and what the lab expects of them:

* `ham`: a corpus ham message from a known correspondent (client addresses
  127.1.0.0/16, whitelisted for greylisting) -- or, for
  `greylist_new_fraction` of them, from a new correspondent (127.3.x.y, a
  new sender address): greylisted first, retried like a real MTA;
* `spam`: a corpus spam message from a random client (127.2.x.y) and sender;
  `spam_retry_fraction` of them retry after greylisting, the rest (bots)
  give up;
* `virus`: a corpus ham message with an EICAR test file attached (base64),
  from a known correspondent: clamd must find it;
* `rejected`: refused in the SMTP dialog before DATA, one of: relay
  attempt (recipient outside relay_domains), non-FQDN sender, invalid HELO,
  blocked client network (127.66.0.0/16, listed in the lab's client access
  table).

Recipients are `userN@example.test` (the lab's relay_domains).  Source
addresses are loopback (127.0.0.0/8): the generator binds to them.
"""

from __future__ import annotations

import base64
import os
import random
from dataclasses import dataclass, field

from postier.bench.source import Outgoing, prepare_content

CLASSES = ("ham", "spam", "virus", "rejected")
REJECT_KINDS = ("relay", "non-fqdn-sender", "bad-helo", "blocked-client")

# the antivirus test string, in two halves so that this file is not "infected"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD"
         + b"-ANTIVIRUS-TEST-FILE!$H+H*")


@dataclass
class Corpus:
    """Message files by label; `bodies` caches those read so far."""

    root: str | None
    files: dict[str, list[str]] = field(default_factory=dict)   # label -> paths
    synthetic_bodies: dict[str, list[bytes]] = field(default_factory=dict)
    _cache: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str) -> Corpus:
        """Read `root/labels.tsv`; raises FileNotFoundError when absent."""
        from postier.errors import SourceError
        labels = os.path.join(root, "labels.tsv")
        files: dict[str, list[str]] = {}
        with open(labels, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                parts = line.rstrip("\n").split("\t")
                if n == 1 and parts[:2] == ["path", "label"]:
                    continue
                if not line.strip() or line.startswith("#"):
                    continue
                if len(parts) < 2:
                    raise SourceError("expected PATH<TAB>LABEL", labels, n)
                files.setdefault(parts[1].strip().lower(), []).append(
                    os.path.join(root, parts[0]))
        if not files:
            raise SourceError("no labelled messages", labels, 1)
        return cls(root=root, files=files)

    @classmethod
    def synthetic(cls, seed: int = 1, per_label: int = 60) -> Corpus:
        rng = random.Random(seed)
        return cls(root=None, synthetic_bodies={
            "ham": [_synthetic_ham(rng, i) for i in range(per_label)],
            "spam": [_synthetic_spam(rng, i) for i in range(per_label)]})

    @property
    def kind(self) -> str:
        return self.root or "synthetic"

    def labels(self) -> list[str]:
        return sorted(set(self.files) | set(self.synthetic_bodies))

    def count(self, label: str) -> int:
        return len(self.files.get(label, ())) or len(self.synthetic_bodies.get(label, ()))

    def pick(self, label: str, rng: random.Random) -> bytes:
        """A random message of `label` (raw bytes as in the file)."""
        if label in self.files and self.files[label]:
            path = rng.choice(self.files[label])
            data = self._cache.get(path)
            if data is None:
                with open(path, "rb") as f:
                    data = f.read()
                self._cache[path] = data
            return data
        bodies = self.synthetic_bodies.get(label)
        if not bodies:
            raise KeyError(f"corpus has no {label!r} messages")
        return rng.choice(bodies)


def _words(rng: random.Random, n: int) -> str:
    vocab = ("the lab meeting results data paper draft review please attached find "
             "thanks regards tomorrow seminar budget grant sample measurement analysis "
             "figure table version update server account cluster run week report").split()
    out, line = [], []
    for _ in range(n):
        line.append(rng.choice(vocab))
        if len(line) >= 12:
            out.append(" ".join(line))
            line = []
    out.append(" ".join(line))
    return "\n".join(out)


def _size(rng: random.Random) -> int:
    return int(min(200_000, max(400, rng.lognormvariate(8.0, 0.9))))   # median ~3 KB


def _synthetic_ham(rng: random.Random, i: int) -> bytes:
    body = _words(rng, _size(rng) // 7)
    return (f"From: Colleague {i} <colleague{i}@partner.example.net>\n"
            f"To: user{i}@example.test\nSubject: lab notes {i}\n"
            f"Date: Mon, 01 Jan 2024 10:{i % 60:02d}:00 +0000\n"
            f"Message-ID: <ham{i}@partner.example.net>\n\n{body}\n").encode()


def _synthetic_spam(rng: random.Random, i: int) -> bytes:
    subj = rng.choice(["make money fast", "cheap viagra now", "you won", "casino bonus",
                       "important offer", "re: your account"])
    body = _words(rng, _size(rng) // 9)
    lure = rng.choice(["click here to unsubscribe", "visit www.spam.example.invalid",
                       "limited offer", "act now"])
    return (f"From: Offers <offer{i}@promo.example.com>\nTo: undisclosed-recipients:;\n"
            f"Subject: {subj}\nDate: Mon, 01 Jan 2024 11:{i % 60:02d}:00 +0000\n"
            f"Message-ID: <spam{i}@promo.example.com>\n\n{body}\n{lure}\n").encode()


def with_eicar(raw: bytes, rng: random.Random) -> bytes:
    """`raw` (a message) wrapped into multipart/mixed with an EICAR attachment."""
    text = raw.replace(b"\r\n", b"\n")
    head, _, body = text.partition(b"\n\n")
    keep = [ln for ln in head.split(b"\n")
            if ln and not ln.lower().startswith((b"content-", b"mime-version"))
            and not ln[:1].isspace()]
    b = f"=_bench_{rng.getrandbits(48):012x}".encode()
    name = rng.choice([b"readme.txt", b"invoice.doc", b"data.bin", b"scan.pdf"])
    return (b"\n".join(keep) + b"\nMIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"\n\n"
            b"--" + b + b"\nContent-Type: text/plain; charset=us-ascii\n\n"
            + body[:4000] + b"\n--" + b + b"\nContent-Type: application/octet-stream\n"
            b"Content-Disposition: attachment; filename=\"" + name + b"\"\n"
            b"Content-Transfer-Encoding: base64\n\n"
            + base64.encodebytes(EICAR) + b"--" + b + b"--\n")


class TrafficMix:
    """Draws messages for a scenario's mix (class -> share)."""

    def __init__(self, shares: dict[str, float], corpus: Corpus, *, seed: int = 1,
                 domain: str = "example.test", greylist_new_fraction: float = 0.0,
                 spam_retry_fraction: float = 0.5, recipients: int = 1):
        unknown = set(shares) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown traffic class {sorted(unknown)[0]!r} "
                             f"(known: {', '.join(CLASSES)})")
        total = sum(v for v in shares.values() if v > 0)
        if total <= 0:
            raise ValueError("the traffic mix has no class with a share above 0")
        self.shares = {k: v / total for k, v in shares.items() if v > 0}
        self.corpus = corpus
        self.rng = random.Random(seed)
        self.domain = domain
        self.greylist_new = greylist_new_fraction
        self.spam_retry = spam_retry_fraction
        self.recipients = max(1, recipients)
        self._n = 0

    def _cls(self) -> str:
        r = self.rng.random()
        acc = 0.0
        for k, v in self.shares.items():
            acc += v
            if r < acc:
                return k
        return next(iter(self.shares))

    def _rcpts(self) -> list[str]:
        return [f"user{self.rng.randrange(250)}@{self.domain}" for _ in range(self.recipients)]

    def message(self, seq: int) -> Outgoing:
        rng = self.rng
        cls = self._cls()
        self._n += 1
        n = self._n
        if cls == "ham" or cls == "virus":
            new = cls == "ham" and rng.random() < self.greylist_new
            label = "ham"
            if new:
                ip = f"127.3.{rng.randrange(256)}.{rng.randrange(1, 255)}"
                sender = f"newcontact{seq}@site{rng.randrange(5000)}.example.org"
                kind = "new-correspondent"
            else:
                k = rng.randrange(200)
                ip = f"127.1.{k // 250}.{k % 250 + 1}"
                sender = f"colleague{k}@partner{k % 40}.example.net"
                kind = "known-correspondent"
            raw = self.corpus.pick(label, rng)
            if cls == "virus":
                raw = with_eicar(raw, rng)
                kind = "eicar"
            return Outgoing(seq=seq, data=prepare_content(raw), sender=sender,
                            rcpts=self._rcpts(), cls=cls, kind=kind, source_ip=ip,
                            helo=f"mail.{sender.split('@')[1]}", retry=True)
        if cls == "spam":
            ip = f"127.2.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            sender = f"u{rng.getrandbits(32):08x}@bulk{rng.randrange(9000)}.example.com"
            retry = rng.random() < self.spam_retry
            raw = self.corpus.pick("spam", rng)
            return Outgoing(seq=seq, data=prepare_content(raw), sender=sender,
                            rcpts=self._rcpts(), cls="spam",
                            kind="spam-mta" if retry else "spam-bot", source_ip=ip,
                            helo=f"host{n}.bulk.example.com", retry=retry)
        # rejected in the dialog
        kind = rng.choice(REJECT_KINDS)
        k = rng.randrange(200)
        ip = f"127.1.{k // 250}.{k % 250 + 1}"
        sender = f"colleague{k}@partner{k % 40}.example.net"
        helo = f"mail.partner{k % 40}.example.net"
        rcpts = self._rcpts()
        if kind == "relay":
            rcpts = [f"someone{n}@elsewhere.example.org"]
        elif kind == "non-fqdn-sender":
            sender = f"colleague{k}"
        elif kind == "bad-helo":
            helo = "bad_helo!"
        else:
            ip = f"127.66.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        raw = self.corpus.pick("ham", rng)
        return Outgoing(seq=seq, data=prepare_content(raw), sender=sender, rcpts=rcpts,
                        cls="rejected", kind=kind, source_ip=ip, helo=helo, retry=False)

    def messages(self, n: int, first_seq: int = 1) -> list[Outgoing]:
        return [self.message(first_seq + i) for i in range(n)]
