"""Image files in and out: decoding with clear errors, atomic writes."""
