"""The labelled data sets the commands read, shipped in the wheel as package data.

- golden.jsonl: messages labelled with their situation and slots; `sales-agent eval` scores
  capture and detect on it, the offline rules were tuned on it, the benchmark draws from it.
- holdout.jsonl: labelled the same way, never used for tuning (the rules' honest score).
- paraphrases.jsonl / hard_negatives.jsonl: message pairs for `sales-agent guard`'s
  threshold curve (rewordings the semantic cache should serve, look-alikes it must not).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent
GOLDEN = DATA / "golden.jsonl"
HOLDOUT = DATA / "holdout.jsonl"
PARAPHRASES = DATA / "paraphrases.jsonl"
HARD_NEGATIVES = DATA / "hard_negatives.jsonl"
