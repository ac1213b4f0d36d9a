"""The HTTP layer: parse, call the engine off the event loop, render."""
