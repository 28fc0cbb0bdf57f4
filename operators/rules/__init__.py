"""The trigger rules, one module per rule, plus what they share (cooldown, templates, minima).

Every rule is a plain class with no Bytewax import: `update(event)` returns the triggers the
event fires, `snapshot()`/`restore()` carry its state. `ruleset.build_rules` makes the enabled
ones from the configuration; `operators.state` feeds them, and `operators.detect` wires that in.
"""
