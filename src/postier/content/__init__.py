"""Content inspection: what Postfix's cleanup and amavisd-new look at in a
message.

Modules: checks (header_checks, mime_header_checks, nested_header_checks,
body_checks: the cleanup hooks), mime (Postfix's MIME state machine), and
the content scan at end of DATA (scan, antivirus, banned, verdict, spam).
Each module's docstring lists the parameters it reads.
"""
