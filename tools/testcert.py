"""Make a throw-away self-signed TLS certificate for tests (openssl CLI).

    from testcert import make_cert
    cert, key = make_cert("/tmp/dir", "mx.example.test")   # PEM paths

    python3 tools/testcert.py DIR [COMMON_NAME]             # prints both paths

Python's `ssl` module cannot create certificates, so this runs the
`openssl` command-line tool (Debian package `openssl`; the `postfix`
package pulls it in through `ssl-cert`, so tools/setup.sh --test provides
it): a 2048-bit RSA key and a self-signed
certificate valid for 30 days, with the common name also as a DNS
subjectAltName.  Nothing is cached: every call makes a new key, so no
private key ever lives in the checkout.  Only the standard library is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def openssl_available() -> bool:
    return os.path.exists(OPENSSL) and os.access(OPENSSL, os.X_OK)


def make_cert(directory: str, common_name: str = "mx.example.test",
              days: int = 30) -> tuple[str, str]:
    """Write DIR/testcert.pem and DIR/testkey.pem; return (cert, key) paths.
    Raises RuntimeError (with openssl's stderr) when openssl fails."""
    if not openssl_available():
        raise RuntimeError("openssl not installed (tools/setup.sh --test installs it)")
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "testcert.pem")
    key = os.path.join(directory, "testkey.pem")
    argv = [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
            "-days", str(days), "-subj", f"/CN={common_name}",
            "-addext", f"subjectAltName=DNS:{common_name}",
            "-keyout", key, "-out", cert]
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode or not (os.path.exists(cert) and os.path.exists(key)):
        raise RuntimeError(f"openssl req failed ({p.returncode}): {p.stderr.strip()}")
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


def main(argv: list[str]) -> int:
    if not argv or len(argv) > 2:
        sys.stderr.write("usage: testcert.py DIR [COMMON_NAME]\n")
        return 2
    try:
        cert, key = make_cert(argv[0], *argv[1:])
    except RuntimeError as e:
        sys.stderr.write(f"testcert: {e}\n")
        return 1
    print(cert)
    print(key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
