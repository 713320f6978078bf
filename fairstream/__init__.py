"""fairstream: scored, aggregated, queryable facts from domain events on Kafka."""

__version__ = "0.1.0"
