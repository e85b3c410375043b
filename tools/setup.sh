#!/bin/sh
# Set up postier from this checkout on a Debian machine (run as root).
#
#   tools/setup.sh          runtime: Debian build packages, .venv, postier built and installed
#   tools/setup.sh --test   also what the test suite needs: the real peers (Postfix tools,
#                           swaks, ...) from Debian and the test Python packages
#
# Idempotent: packages already present are not installed again.  Installing
# Debian packages never starts their services here (a policy-rc.d is put in
# place for the duration of the install only), so no system Postfix appears
# on port 25.
set -eu
cd "$(dirname "$0")/.."
TEST=0
[ "${1:-}" = "--test" ] && TEST=1

RUNTIME_DEBS="python3 python3-venv python3-dev gcc libpcre2-8-0"
# Real peers used by the tests (oracle and baselines): Postfix and its pcre map,
# smtp-source/smtp-sink (in postfix), swaks; Dovecot LMTP (lmtp agent tests),
# nsd (authoritative DNS on a loopback port for the smtp client's MX tests);
# SpamAssassin, spamd + spamc (the spam rule engine's oracle and benchmark baseline);
# postgrey (the greylisting oracle and baseline), redis-server (shared greylist store);
# clamav-daemon + clamav (clamd for the antivirus tests, with a signature database the
# tests make themselves: no freshclam); chromium (headless screenshots of the
# `postier bench` HTML report).
TEST_DEBS="postfix postfix-pcre swaks dovecot-core dovecot-lmtpd nsd spamassassin spamd spamc postgrey redis-server clamav-daemon clamav chromium"

missing=""
want="$RUNTIME_DEBS"
[ $TEST = 1 ] && want="$want $TEST_DEBS"
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup: need root to install Debian packages:$missing" >&2
        exit 1
    fi
    echo "setup: installing Debian packages:$missing"
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    [ $made_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# postier's own unprivileged account (mail_owner = postier): the master runs
# the smtpd processes (and the queue manager, unless local/pipe delivery needs
# root) as this user and gives it the queue directory (see postier.master).
if [ "$(id -u)" = 0 ] && ! getent passwd postier >/dev/null; then
    useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin postier
    echo "setup: created the system account postier"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel cython
if [ $TEST = 1 ]; then
    .venv/bin/python -m pip install -q -e '.[test]'
else
    .venv/bin/python -m pip install -q -e .
fi
# The editable install builds the native modules; build them in place as well
# so that `src/` on sys.path always has them (pytest, tools).
.venv/bin/python setup.py -q build_ext --inplace >/dev/null
echo "setup: ready (.venv/bin/postier)"
