"""Fault injection: run the whole platform under kills and outages, compare its read models.

`fairstream faults` (`make faults`) starts its own stack, publishes seeded traffic plus
poison through every processor and projection, injects faults (SIGKILL of services, broker
restart, PostgreSQL outage, a broker of a 3-node cluster killed), and compares every read
model and dead-letter topic with a fault-free reference run of the same events.
"""
