"""Faults on servers the tests spawn, load held, and no unbounded wait (docs/reliability.md)."""
