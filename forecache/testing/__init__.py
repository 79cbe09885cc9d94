"""Model fixtures shared by the tests, the profile and the docs.

Tiny random-weight transformers, a tiny pipeline around them, and published architectures at full
or tiny size. Random weights only: these exercise plumbing, speed and memory, never forecast
quality (that is what the trained models of `forecache.reference` are for).
"""
