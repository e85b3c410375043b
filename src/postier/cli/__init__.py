"""Command-line entry points: `postier SUBCOMMAND` and `postier-sendmail`."""
