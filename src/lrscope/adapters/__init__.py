"""One adapter per framework, each importing its framework lazily (inside the module)."""
