"""Benchmarks: this SDK against raw aiohttp (the floor) and the official SDK (the peer).

``python -m benchmarks.run`` (``make bench``) runs every workload in a fresh
client process per measurement against one emulator process at a time and
writes ``benchmarks/results/latest.{md,json}``; ``--quick`` is the smoke run.
"""
