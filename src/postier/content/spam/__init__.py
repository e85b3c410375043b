"""SpamAssassin-compatible rule engine (see postier.content.spam.scanner)."""
