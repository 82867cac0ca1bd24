"""Fake LLM server for tests and latency benchmarks: real Anthropic/OpenAI wire protocols
over real sockets on 127.0.0.1, a pluggable answerer, a per-model latency model
(latency.toml), fault injection and request recording. See server.py / README.md.
"""

from .core import ClientGone, Connection, RequestRecord, default_answerer
from .embeddings import cosine, embed
from .faults import FAULT_KINDS, Fault, FaultSet
from .latency import LatencyModel, LatencyProfile, LatencySample, count_tokens, load_profiles
from .protocol import ParsedRequest
from .server import FakeLLMServer, TLSEndpoint

__all__ = [
    "FAULT_KINDS",
    "ClientGone",
    "Connection",
    "FakeLLMServer",
    "Fault",
    "FaultSet",
    "LatencyModel",
    "LatencyProfile",
    "LatencySample",
    "ParsedRequest",
    "RequestRecord",
    "TLSEndpoint",
    "cosine",
    "count_tokens",
    "default_answerer",
    "embed",
    "load_profiles",
]
