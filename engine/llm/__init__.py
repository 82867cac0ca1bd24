"""Providers behind the `Provider` port: the offline tier, LLM SDK adapters, the router."""
