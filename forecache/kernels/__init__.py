"""forecache.kernels."""
