"""egolib: the thin library behind egobook."""
