"""The engine: the resolved snapshot, the one call loop, retry decisions, limits, deadlines.

Imports flow one way: ``service`` -> ``engine`` -> (``request``, ``providers``, ``types``,
``config``, ``errors``); nothing here imports the service.
"""
