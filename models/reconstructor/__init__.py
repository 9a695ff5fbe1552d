"""Lead I (+ age, sex) -> the other eleven leads with per-sample uncertainty.

Importing the package registers the builders ``dual_branch`` (the method), ``unet`` and ``linear``.
"""

from models.reconstructor import dual_branch, linear, unet

__all__ = ["dual_branch", "linear", "unet"]
