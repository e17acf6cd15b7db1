"""Pure-Python signal core: rules, text form, indicators, bars and the per-symbol state machine."""
