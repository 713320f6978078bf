"""Versioned read-model schema migrations, one SQL file per version."""
