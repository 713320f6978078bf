"""Subcommands of the `fairstream` console script, one module per area."""
