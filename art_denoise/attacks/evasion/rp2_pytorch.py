"""RP2 as an ART ``EvasionAttack`` for PyTorch classifiers.

A thin wrapper: it checks ART-style arguments, turns the estimator into a torch module
(the estimator's preprocessing followed by ``estimator.model``) and runs
:func:`art_denoise.attacks.rp2.rp2_attack`.

| Paper link: https://arxiv.org/abs/1707.08945 (Eykholt et al., 2018)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.config import ART_NUMPY_DTYPE
from art.estimators.classification.classifier import ClassifierMixin
from art.estimators.estimator import BaseEstimator, LossGradientsMixin
from art.estimators.pytorch import PyTorchEstimator

from art_denoise._validation import as_float_images, as_labels
from art_denoise.attacks._transforms import TransformRanges
from art_denoise.attacks.rp2 import RP2Config, as_mask, rp2_attack, sticker_mask
from art_denoise.estimators.classification.preprocessed import estimator_module

if TYPE_CHECKING:
    from art.estimators.classification import PyTorchClassifier

__all__ = ["RobustPhysicalPerturbationPyTorch"]


class RobustPhysicalPerturbationPyTorch(EvasionAttack):
    """Robust Physical Perturbations (RP2) of Eykholt et al. (2018) for PyTorch classifiers.

    Optimises, with Adam, a perturbation ``delta`` confined to a 0/1 mask ``M``::

        lambda_reg * ||M * delta||_norm + E_t CE(f(t(x + M * delta)), y*)
        [+ nps_weight * NPS(x + M * delta) when nps_colors is given]

    over random rotations, scalings, translations, brightness and contrast changes ``t``
    (``nb_transforms`` samples per step). Targeted attacks minimise the target's
    cross-entropy; untargeted ones lower the true label's probability ``p_y`` through
    ``-log(1 - p_y)`` (like maximising its cross-entropy, without the vanishing gradient
    of a saturated softmax). The output is
    ``clip(x + M * delta)``: pixels outside the mask are returned unchanged, bit for bit.

    The model runs in eval mode with frozen parameters; its train/eval mode, its
    parameters' ``requires_grad`` and ``.grad`` are restored afterwards. The estimator's
    preprocessing is applied in torch (``PreprocessorPyTorch`` steps and ART's
    standardisation); an estimator with a numpy preprocessing step is refused. Inputs
    are channels-first and must lie within the estimator's ``clip_values``, which are
    required. The model must return logits.

    | Paper link: https://arxiv.org/abs/1707.08945

    Example:
        >>> from art_denoise.estimators import to_art_classifier
        >>> from art_denoise.models import create_model
        >>> clf = to_art_classifier(create_model("smallcnn", input_shape=(1, 8, 8)), device="cpu")
        >>> attack = RobustPhysicalPerturbationPyTorch(clf, max_iter=5, targeted=True)
        >>> x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
        >>> attack.generate(x, y=np.array([3, 3])).shape
        (2, 1, 8, 8)
    """

    attack_params: ClassVar[list[str]] = [
        *EvasionAttack.attack_params,
        "max_iter",
        "learning_rate",
        "lambda_reg",
        "norm",
        "nb_transforms",
        "rotation_range",
        "scale_range",
        "translation_range",
        "brightness_range",
        "contrast_range",
        "n_stickers",
        "area_fraction",
        "nps_colors",
        "nps_weight",
        "batch_size",
        "targeted",
        "random_seed",
        "verbose",
    ]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin, ClassifierMixin, PyTorchEstimator)

    def __init__(
        self,
        estimator: PyTorchClassifier,
        *,
        max_iter: int = 100,
        learning_rate: float = 0.1,
        lambda_reg: float = 0.002,
        norm: int | float | str = 2,
        nb_transforms: int = 8,
        rotation_range: tuple[float, float] = (-10.0, 10.0),
        scale_range: tuple[float, float] = (0.9, 1.1),
        translation_range: tuple[float, float] = (-0.05, 0.05),
        brightness_range: tuple[float, float] = (-0.1, 0.1),
        contrast_range: tuple[float, float] = (0.9, 1.1),
        n_stickers: int = 2,
        area_fraction: float = 0.1,
        nps_colors: np.ndarray | None = None,
        nps_weight: float = 1.0,
        batch_size: int = 128,
        targeted: bool = False,
        random_seed: int = 0,
        verbose: bool = False,
    ) -> None:
        """Create the attack.

        Args:
            estimator: a PyTorch classifier with ``clip_values``, returning logits.
            max_iter: Adam steps per batch.
            learning_rate: Adam's step size, in input units.
            lambda_reg: weight of ``||M * delta||_norm``, ``>= 0``.
            norm: 1, 2 or ``np.inf``.
            nb_transforms: samples of the transformation distribution per step.
            rotation_range: rotation in degrees, ``(min, max)``.
            scale_range: zoom factor, ``(min, max)``, > 0.
            translation_range: shift as a fraction of width/height, per axis.
            brightness_range: additive offset as a fraction of the clip range.
            contrast_range: factor on each channel's deviation from its mean, >= 0.
            n_stickers: rectangles of the mask generated when ``generate`` gets none.
            area_fraction: total area of those rectangles, as a fraction of the image.
            nps_colors: optional printable colours, shape (K, C); adds the
                non-printability score with weight ``nps_weight``.
            nps_weight: weight of the non-printability score, ``>= 0``.
            batch_size: images optimised together.
            targeted: ``y`` holds target labels (True) or true labels (False).
            random_seed: seeds the transformation samples and the generated mask.
            verbose: show a progress bar.
        """
        super().__init__(estimator=estimator)
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.lambda_reg = lambda_reg
        self.norm = norm
        self.nb_transforms = nb_transforms
        self.rotation_range = rotation_range
        self.scale_range = scale_range
        self.translation_range = translation_range
        self.brightness_range = brightness_range
        self.contrast_range = contrast_range
        self.n_stickers = n_stickers
        self.area_fraction = area_fraction
        self.nps_colors = nps_colors
        self.nps_weight = nps_weight
        self.batch_size = batch_size
        self.targeted = targeted
        self.random_seed = random_seed
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        """Check every setting (also after ``set_params``) and build the torch config."""
        if not isinstance(self.targeted, bool):
            raise TypeError(f"targeted must be a bool, got {self.targeted!r}")
        if not isinstance(self.verbose, bool):
            raise TypeError(f"verbose must be a bool, got {self.verbose!r}")
        clip = self.estimator.clip_values
        if clip is None:
            raise ValueError(
                "RobustPhysicalPerturbationPyTorch needs an estimator with clip_values"
            )
        bounds = np.asarray(clip, dtype=np.float64)
        if bounds.shape != (2,):
            raise ValueError(
                "RobustPhysicalPerturbationPyTorch needs scalar clip_values (min, max), "
                f"got an array of shape {bounds.shape}"
            )
        if not self.estimator.channels_first:
            raise ValueError("RobustPhysicalPerturbationPyTorch needs a channels-first estimator")
        estimator_module(self.estimator, fit=False, who=type(self).__name__)  # refuses numpy steps
        transforms = TransformRanges(
            rotation=self.rotation_range,
            scale=self.scale_range,
            translation=self.translation_range,
            brightness=self.brightness_range,
            contrast=self.contrast_range,
        )
        self._config = RP2Config(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            lambda_reg=self.lambda_reg,
            norm=self.norm,
            nb_transforms=self.nb_transforms,
            transforms=transforms,
            nps_colors=self.nps_colors,
            nps_weight=self.nps_weight,
            clip_values=(float(bounds[0]), float(bounds[1])),
            batch_size=self.batch_size,
            random_seed=self.random_seed,
        )
        # Checks n_stickers and area_fraction with the same messages as generate will.
        sticker_mask((1, 1), n_stickers=self.n_stickers, area_fraction=self.area_fraction)

    def generate(
        self,
        x: np.ndarray,
        y: np.ndarray | None = None,
        mask: np.ndarray | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        """Generate adversarial examples.

        Args:
            x: images, (N, C, H, W), within the estimator's ``clip_values``.
            y: target labels (targeted; required) or true labels (untargeted; the
                estimator's predictions if omitted), as indices (N,) or one-hot.
            mask: 0/1 array broadcastable to (N, C, H, W), e.g. (H, W); if omitted,
                ``sticker_mask(x.shape, n_stickers, area_fraction, random_seed)`` is used
                for every image.

        Returns:
            The adversarial images, float32, shape of ``x``.

        Raises:
            TypeError: ``x`` is not a numpy array, or an unknown keyword argument.
            ValueError: bad shapes, labels, mask values or ``x`` outside ``clip_values``.
        """
        if kwargs:
            raise TypeError(f"unexpected keyword arguments {sorted(kwargs)}")
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x must be a numpy array, got {type(x).__name__}")
        shape = tuple(self.estimator.input_shape)
        if x.ndim != 4 or tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"x must have shape (N, *{shape}) for this estimator, got shape {x.shape}"
            )
        xt = as_float_images(x, clip_values=self._config.clip_values)
        nb_classes = int(self.estimator.nb_classes)
        if y is None:
            if self.targeted:
                raise ValueError("a targeted attack needs target labels y")
            labels = torch.from_numpy(
                np.asarray(self.estimator.predict(x, batch_size=self.batch_size)).argmax(axis=1)
            )
        else:
            labels = as_labels(y, n=len(x), num_classes=nb_classes)
        if mask is None:
            mask = sticker_mask(
                x.shape,
                n_stickers=self.n_stickers,
                area_fraction=self.area_fraction,
                seed=self.random_seed,
            )
        m = as_mask(mask, xt.shape)
        module = estimator_module(self.estimator, fit=False, who=type(self).__name__)
        x_adv = rp2_attack(
            module,
            xt,
            labels,
            m,
            targeted=self.targeted,
            config=self._config,
            verbose=self.verbose,
        )
        return x_adv.cpu().numpy().astype(ART_NUMPY_DTYPE)
