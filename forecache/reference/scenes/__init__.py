"""The scenes reference model: a text-to-image `FluxPipeline` trained on procedurally generated scenes.

- `grammar`: the vocabulary, the caption grammar and its inverse, the held-out colour-shape pairs;
- `render`: scenes to 32x32 RGB images;
- `prompts`: the fixed calibration, benchmark and held-out prompt sets;
- `model`: the pipeline's components and `CALL_DEFAULTS`;
- `judge`: `SceneJudge`, which reads a scene back from an image, and `adherence`;
- `train`: the four-stage, resumable training.
"""

from forecache.reference.scenes.model import CALL_DEFAULTS

__all__ = ["CALL_DEFAULTS"]
