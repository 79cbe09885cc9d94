"""The one command for the GPU figures: ``bash benchmarks/gpu/run.sh --out DIR`` (see BENCHMARKS.md).

``plan`` lists the measurements, estimates their cost and trims them to a time budget; ``worker``
runs one part (one model build, or the kernels) in its own process; ``report`` renders the JSON
and Markdown report with the acceptance checks; ``run`` ties them together.
"""
