"""LLM protocol clients: each turns a trigger context into an insight."""
