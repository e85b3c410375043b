"""postier: a Postfix-compatible mail transfer agent in Python with compiled hot paths."""

__version__ = "0.1.0"
MAIL_NAME = "postier"
