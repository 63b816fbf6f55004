"""Package data of the runtime (third-party data with its licence notice in NOTICE.md)."""
