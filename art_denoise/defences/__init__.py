"""ART-facing defences, laid out as ART's ``art.defences``.

- :mod:`art_denoise.defences.preprocessor`: ``PreprocessorPyTorch`` input defences (low-pass
  filters, the denoising autoencoder), as ``art.defences.preprocessor``;
- :mod:`art_denoise.defences.trainer`: ``Trainer`` subclasses over the torch training loop
  (:mod:`art_denoise.training`), as ``art.defences.trainer``.

The torch modules they wrap (:mod:`art_denoise.autoencoder`, :mod:`art_denoise.filters`,
:mod:`art_denoise.training`) import without ART.
"""
