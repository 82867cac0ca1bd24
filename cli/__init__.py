"""The command line and the console: arguments, commands, the console chat and its text card.

It uses the engine only (never `bot/` or `storage/`): `app.py` wires the adapters and hands
each command what it needs, usually a way to open the engine.
"""
