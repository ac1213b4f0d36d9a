"""Getting MovieLens onto disk and into frames."""
