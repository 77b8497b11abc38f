"""Built-in demo material: procedural aerial scenes in DIOR's layout (``scenes``) for a model that needs no download."""
