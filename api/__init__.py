"""Read-only HTTP API over the read models."""
