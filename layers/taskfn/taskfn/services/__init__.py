"""Services: the use cases, over stores and the pure lifecycle."""
