"""Replay SMTP fixtures recorded from real Postfix against postier.

The fixtures (`*.json` beside this file, format postfix_diff/smtp/1) hold,
per dialog, the main.cf overrides, lookup tables, the simulated client
(sent as one XCLIENT command) and every command with Postfix's reply.  This
module writes a scenario's configuration into a temporary root, starts
`postier run` on a free loopback port, and replays dialogs with a minimal
SMTP client that records every reply the same way the recording harness
did (reply text = lines without the code, joined with \\n; queue IDs
normalised to QUEUEID).

Only loopback is ever contacted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

MASTER_CF = """\
# replay harness: one smtpd on loopback; the other services are Postfix-internal
{port} inet n - n - - smtpd
cleanup   unix  n       -       n       -       0       cleanup
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
anvil     unix  -       -       n       -       1       anvil
postlog   unix-dgram n  -       n       -       1       postlogd
"""

QUEUED_AS = re.compile(r"(queued as )([0-9A-Za-z]+)")


def load_fixture(name: str) -> dict:
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
        return json.load(f)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def xtext(value: str) -> str:
    out = []
    for ch in value:
        o = ord(ch)
        out.append(f"+{o:02X}" if o < 33 or o > 126 or ch in "+=" else ch)
    return "".join(out)


class Client:
    """Line-oriented SMTP client recording every reply."""

    def __init__(self, port: int, timeout: float = 30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.rfile = self.sock.makefile("rb")

    def read_reply(self) -> dict:
        lines = []
        while True:
            raw = self.rfile.readline()
            if not raw:
                if lines:
                    break
                return {"reply_code": None, "reply_text": "(connection closed)"}
            line = raw.decode("utf-8", "surrogateescape").rstrip("\r\n")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        code = int(lines[-1][:3]) if lines[-1][:3].isdigit() else None
        return {"reply_code": code, "reply_text": "\n".join(x[4:] for x in lines)}

    def send_line(self, line: str) -> None:
        self.sock.sendall(line.encode("utf-8", "surrogateescape") + b"\r\n")

    def send_data(self, message: str) -> None:
        text = message.replace("\r\n", "\n")
        if text.endswith("\n"):
            text = text[:-1]
        out = ["." + x if x.startswith(".") else x for x in text.split("\n")]
        self.sock.sendall(("\r\n".join(out) + "\r\n.\r\n").encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        try:
            self.rfile.close()
            self.sock.close()
        except OSError:
            pass


def run_dialog(port: int, dialog: dict) -> list[dict]:
    """Replay one fixture dialog; return records shaped like dialog['dialog']."""
    c = Client(port)
    records = []
    try:
        banner = c.read_reply()
        if dialog.get("xclient"):
            attrs = " ".join(f"{k}={xtext(v)}" for k, v in dialog["xclient"].items())
            c.send_line("XCLIENT " + attrs)
            banner = c.read_reply()
        records.append({"cmd": None, **banner})
        data_ok = False
        for step in dialog["dialog"][1:]:
            if "data" in step:
                if not data_ok:
                    records.append({"data": step["data"], "skipped": True})
                    continue
                c.send_data(step["data"])
                rec = {"data": step["data"]}
            else:
                c.send_line(step["cmd"])
                rec = {"cmd": step["cmd"]}
            reply = c.read_reply()
            rec.update(reply)
            records.append(rec)
            data_ok = "cmd" in step and step["cmd"].upper() == "DATA" and reply["reply_code"] == 354
            if reply["reply_code"] in (None, 221, 421):
                break
    finally:
        c.close()
    ids: list[str] = []
    for r in records:
        m = QUEUED_AS.search(r.get("reply_text") or "")
        if m and m.group(2) not in ids:
            ids.append(m.group(2))
    for r in records:
        for i, qid in enumerate(ids):
            if r.get("reply_text"):
                r["reply_text"] = r["reply_text"].replace(
                    qid, "QUEUEID" if len(ids) == 1 else f"QUEUEID{i}")
    return records


def comparable(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        item = {"step": r.get("cmd") if "cmd" in r else "<DATA>",
                "reply_code": r.get("reply_code"), "reply_text": r.get("reply_text")}
        if r.get("skipped"):
            item = {"step": "<DATA>", "skipped": True}
        out.append(item)
    return out


class PostierInstance:
    """`postier run` on a private root with one fixture scenario's config."""

    def __init__(self, fixture: dict, pure: bool = False):
        self.fixture = fixture
        self.pure = pure
        self.root = tempfile.mkdtemp(prefix="postier_compat.")
        os.chmod(self.root, 0o755)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.scenario: str | None = None

    def configure(self, dialog: dict) -> None:
        self.stop()
        etc = os.path.join(self.root, "etc")
        tdir = os.path.join(self.root, "tables")
        shutil.rmtree(tdir, ignore_errors=True)
        for d in (etc, tdir, os.path.join(self.root, "queue"), os.path.join(self.root, "data")):
            os.makedirs(d, exist_ok=True)
        env = self._env()
        for name, spec in dialog["tables"].items():
            path = os.path.join(tdir, name)
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(spec["text"])
            past = time.time() - 3600
            os.utime(path, (past, past))
            if spec["type"] == "hash":
                subprocess.run([sys.executable, "-m", "postier.cli.main", "map",
                                f"hash:{path}"], env=env, capture_output=True, check=False)
        params: dict[str, str] = {}
        for k, v in (self.fixture["harness_main_cf"] + self.fixture["base_main_cf"]
                     + dialog["main_cf_overrides"]):
            params[k] = v
        with open(os.path.join(etc, "main.cf"), "w") as f:
            for k, v in params.items():
                v = v.replace("@ROOT@", self.root).replace("@TABLES@", tdir)
                f.write(f"{k} = {v}\n")
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=f"127.0.0.1:{self.port}"))
        self.out = open(os.path.join(self.root, "postier.out"), "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "postier.cli.main", "run", "-c", etc],
            env=env, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out, cwd=self.root)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postier exited ({self.proc.returncode}): {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("postier did not listen: " + self.output())
        self.scenario = dialog["scenario"]

    def _env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
        env["POSTIER_PURE"] = "1" if self.pure else "0"
        return env

    def output(self) -> str:
        try:
            with open(os.path.join(self.root, "postier.out"), "rb") as f:
                return f.read()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def maillog(self) -> str:
        try:
            with open(os.path.join(self.root, "maillog"), encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.out.close()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- queue files and logs
# The recording harness's normalisation of postcat output and log lines
# (compat/pfdiff/oracle.py: postcat_capture, strip_postcat_banner,
# normalize_dates, parse_envelope), for the dialogs that record queue files.

DATE_RX = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [ \d]?\d "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"\d\d:\d\d:\d\d [+-]\d{4} \([^)]*\)")
MSGID_RX = re.compile(r"<\d{14}\.(QUEUEID\d*)@")
BANNER_RX = re.compile(r"^\*\*\* ENVELOPE RECORDS (?:(\w+)/)?(\S+) \*\*\*", re.M)
DROP_ATTR = ("log_client_address", "log_client_name", "log_helo_name", "log_message_origin",
             "log_protocol_name", "log_client_port", "client_address_type", "client_name",
             "reverse_client_name", "client_address", "client_port", "helo_name",
             "protocol_name", "rewrite_context", "trace_flags", "sasl_method",
             "sasl_username", "server_address", "server_port", "create_time",
             "message_origin", "log_ident")
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")
LOG_PREFIX_RX = re.compile(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ ([\w.-]+)/([\w.-]+)\[\d+\]: ")


def normalize_ids(text: str, ids: list[str]) -> str:
    for i, qid in enumerate(ids):
        text = text.replace(qid, "QUEUEID" if len(ids) == 1 else f"QUEUEID{i}")
    return text


def normalize_dates(text: str) -> str:
    return MSGID_RX.sub(r"<TIMESTAMP.\1@", DATE_RX.sub("DATE", text))


def strip_banner(text: str) -> str:
    keep = [x for x in text.splitlines() if not (x.startswith("*** ") and x.endswith(" ***"))]
    return "\n".join(keep) + ("\n" if keep else "")


def parse_envelope(text: str) -> list[list[str]]:
    env = []
    for line in text.splitlines():
        if line.startswith("*** ") or ": " not in line:
            continue
        key, _, val = line.partition(": ")
        key = key.strip()
        if key in ("message_size", "message_arrival_time", "create_time",
                   "warning_message_time", "named_attribute_size"):
            continue
        if key == "named_attribute" and val.split("=", 1)[0] in DROP_ATTR:
            continue
        env.append([key, val])
    return env


def queue_files(root: str) -> dict[str, tuple[str, str]]:
    """queue ID -> (queue name, path) of every committed queue file."""
    found = {}
    for q in QUEUES:
        d = os.path.join(root, "queue", q)
        if os.path.isdir(d):
            for name in os.listdir(d):
                if not name.startswith("."):
                    found[name] = (q, os.path.join(d, name))
    return found


def capture_queue_file(qid: str, queue: str, path: str, ids: list[str]) -> dict:
    """postcat_capture() of the recording harness, on postier's queue file
    (read with postier.queue.postcat, the code behind `postier queue cat`)."""
    from postier.queue.postcat import format_queue_file
    res: dict = {"queue": None}
    env_txt = format_queue_file(path, queue, envelope=True, header=False, body=False)
    m = BANNER_RX.search(env_txt)
    res["queue"] = m.group(1) if m and m.group(1) else "unknown"
    res["headers"] = normalize_dates(strip_banner(normalize_ids(
        format_queue_file(path, queue, envelope=False, header=True, body=False), ids)))
    res["body"] = strip_banner(normalize_ids(
        format_queue_file(path, queue, envelope=False, header=False, body=True), ids))
    res["envelope"] = parse_envelope(normalize_ids(env_txt, ids))
    return res


def session_log(text: str, ids: list[str]) -> list[str]:
    """Log lines of one session as the fixtures keep them: without the
    timestamp, host and PID, without connect/disconnect lines, with queue IDs
    and dates normalised; `postier/SERVICE` becomes `postfix/SERVICE`."""
    out = []
    for line in text.splitlines():
        m = LOG_PREFIX_RX.match(line)
        if not m:
            continue
        body = line[m.end():]
        if body.startswith(("connect from ", "disconnect from ")):
            continue
        out.append(normalize_dates(normalize_ids(f"postfix/{m.group(2)}: {body}", ids)))
    return out
