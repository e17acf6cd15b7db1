"""The engine app: the signal core, the feeds and the worker process."""
