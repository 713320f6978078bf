"""Projections: consume events and keep read models with their applied Kafka positions."""
