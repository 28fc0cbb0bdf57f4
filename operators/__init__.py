"""The dataflow's steps: sources, windowed state and rules, the LLM step, the alert stage."""
