"""torchattacks backend for art-denoise, registered under the ``art_denoise.backends`` group.

Example:
    >>> from art_denoise.attacks.backends import get_backend
    >>> get_backend("torchattacks").name
    'torchattacks'
"""

from __future__ import annotations

from art_denoise_torchattacks.backend import TorchattacksBackend

__all__ = ["TorchattacksBackend"]
