"""The Eyes dataflow, its configuration and its command line."""
