"""Rules: trading rule definitions (JSON), their validation and their lifecycle."""
