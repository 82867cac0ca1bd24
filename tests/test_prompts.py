"""Prompt styles: what each asks of the model and what output budget it gives."""

from engine.llm import prompts
from engine.model import Detection
from engine.playbook import default_playbook
from engine.ports import StepRequest


def generate(style: str) -> prompts.Prompt:
    strategy = default_playbook().select("price_objection", {})
    return prompts.build(
        StepRequest(
            "generate",
            "too expensive",
            style=style,  # type: ignore[arg-type]
            detection=Detection("price_objection", 0.9),
            strategy=strategy,
        )
    )


def test_terse_asks_for_shorter_replies_within_a_tighter_budget() -> None:
    compact, terse = generate("compact"), generate("terse")
    assert "under 90 words" in compact.system and "under 30 words" in compact.system
    assert "under 40 words" in terse.system and "under 15 words" in terse.system
    assert terse.max_tokens < compact.max_tokens
    # Room for what it asks: about 55 words of JSON, at 4 characters a token.
    assert terse.max_tokens * 4 >= (40 + 15) * 6 + 40
    assert terse.user == compact.user


def test_terse_changes_only_generate() -> None:
    for step in ("capture", "detect"):
        assert prompts.system_prompt(step, "terse") == prompts.system_prompt(step, "compact")


def test_capture_budget_holds_the_longest_strict_answer() -> None:
    """OpenAI's strict schema makes a capture spell out all nine slots: at their longest
    (12-word values, the prompt's limit), pretty-printed, the answer still fits its budget;
    detect's longest labels fit too. A budget that cut these would make valid answers
    `truncated`."""
    import json

    from engine.llm.prompts import MAX_TOKENS, count_tokens
    from engine.taxonomy import SITUATIONS, SLOTS

    full = {"slots": {s: " ".join(["pipeline"] * 12) for s in SLOTS}, "confidence": 0.85}
    assert count_tokens(json.dumps(full, indent=2)) <= MAX_TOKENS["capture"]
    longest = max(SITUATIONS, key=len)
    detect = {"situation": longest, "confidence": 0.85, "secondary": longest}
    assert count_tokens(json.dumps(detect, indent=2)) * 2 <= MAX_TOKENS["detect"]


def test_generate_budget_holds_the_longest_answer_the_lenient_schema_allows() -> None:
    """A grammar-constrained model stops at the schema's maxLength: at that length the
    answer still fits generate's budget, so a rambling reply is bounded, not cut."""
    import json

    from engine.llm import schemas
    from engine.llm.prompts import MAX_TOKENS

    props = schemas.schema("generate")["properties"]
    # "^[^<>{}]{1,600}$": the bound is the last number of the pattern.
    bound = {n: int(spec["pattern"].split(",")[-1].split("}")[0]) for n, spec in props.items()}
    longest = {name: "x" * n for name, n in bound.items()}
    # At 1.5 characters a token, the worst a weak model's tokenizer does on prose.
    assert len(json.dumps(longest, indent=2)) / 1.5 <= MAX_TOKENS["generate"]
    assert schemas.schema("generate", strict=True)["properties"]["reply"] == {"type": "string"}
