"""The stamp-rally demo: real face photos in, a complete rally on the local stack out."""
