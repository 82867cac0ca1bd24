"""The labelled data sets the commands read, shipped in the wheel as package data.

- golden.jsonl: messages labelled with their situation and slots; `sales-agent eval` scores
  capture and detect on it, the offline rules were tuned on it, the benchmark draws from it.
- holdout.jsonl: labelled the same way, never used for tuning (the rules' honest score).
- threads.jsonl: multi-turn deal threads with the slots a person keeps by the last message and
  its situation, written by someone who never saw the rules; `sales-agent eval --threads`
  scores thread memory on it (t01-t26 tune, t27-t40 are held out).
- grounding.jsonl: messages whose right answer is one section of examples/knowledge (an
  invented company and its competitors); `sales-agent eval --knowledge DIR` scores grounding.
- paraphrases.jsonl / hard_negatives.jsonl: message pairs for `sales-agent guard`'s
  threshold curve (rewordings the semantic cache should serve, look-alikes it must not).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).parent
GOLDEN = DATA / "golden.jsonl"
HOLDOUT = DATA / "holdout.jsonl"
THREADS = DATA / "threads.jsonl"
PARAPHRASES = DATA / "paraphrases.jsonl"
HARD_NEGATIVES = DATA / "hard_negatives.jsonl"
GROUNDING = DATA / "grounding.jsonl"
