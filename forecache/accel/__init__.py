"""forecache.accel."""
