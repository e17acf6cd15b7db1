"""Signals: every signal the engine fired, stored and delivered."""
