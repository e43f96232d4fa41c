"""Wire protocol: codec (frames), messages (the schema of every op), validate (arguments)."""
