"""The published package's `badam.utils` path: `from badam.utils import BAdamCallback` keeps working."""

from .clipping import clip_grad_norm_old_version
from .hf import BAdamCallback

__all__ = ["BAdamCallback", "clip_grad_norm_old_version"]
