"""The motion reference model: a text-to-video `WanPipeline` trained on procedurally generated moving scenes.

- `grammar`: the motions, the caption grammar and its inverse, the held-out colour-motion pairs;
- `render`: clips to 9 frames of 32x32 RGB, with the scenes' drawing primitives;
- `prompts`: the fixed calibration, benchmark and held-out prompt sets;
- `model`: the pipeline's components (one transformer, or Wan 2.2's two experts) and `CALL_DEFAULTS`;
- `judge`: `MotionJudge`, which reads every frame's objects by colour, per-frame adherence and
  motion accuracy;
- `train`: the five-stage, resumable training.
"""

from forecache.reference.motion.model import CALL_DEFAULTS

__all__ = ["CALL_DEFAULTS"]
