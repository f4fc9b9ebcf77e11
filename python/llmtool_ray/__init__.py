"""Ray driver for llmtool's evolutionary merge search (see driver.py)."""

from .driver import Driver, EvalActor, StopDriver, main

__all__ = ["Driver", "EvalActor", "StopDriver", "main"]
