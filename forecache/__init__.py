"""forecache: training-free acceleration of diffusion transformers by forecasting cached features."""
