"""foolbox backend for art-denoise, registered under the ``art_denoise.backends`` group.

Example:
    >>> from art_denoise.attacks.backends import get_backend
    >>> get_backend("foolbox").name
    'foolbox'
"""

from __future__ import annotations

from art_denoise_foolbox.backend import FoolboxBackend

__all__ = ["FoolboxBackend"]
