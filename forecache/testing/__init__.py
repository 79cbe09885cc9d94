"""Model fixtures shared by the tests, the profile and the docs.

Tiny random-weight configurations of every diffusers transformer class (`catalog`; `tiny` keeps the
original entry points), a tiny pipeline around them, published architectures at full or tiny size
(`arch`), and the structure survey that layout inference is designed from (`observe`, `survey`).
Random weights only: these exercise plumbing, speed and memory, never forecast quality (that is
what the trained models of `forecache.reference` are for).
"""
