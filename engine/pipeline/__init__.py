"""The four steps (capture, detect, select, generate) and the orchestrator that runs them."""
