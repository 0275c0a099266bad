"""Behaviour tests of the RealtimeKit emulator (plain aiohttp, no SDK)."""
