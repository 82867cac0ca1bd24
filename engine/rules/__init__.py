"""The offline tier's rules: deterministic capture and detect from the language of sales."""
