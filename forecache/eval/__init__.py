"""forecache.eval."""
