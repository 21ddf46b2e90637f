"""Neural augmentation: a 3D U-Net that removes missing-wedge and noise artifacts (no Qt).

``generate_training_set`` simulates training pairs (GENFIRE input, Gaussian-atom target) on
Dask; ``train_unet`` trains; ``augment_volume`` applies shipped or own weights to any tomogram.
"""

from ._data import (
    TRAINING_DENOISE,
    TRAINING_STRUCTURES,
    TrainingDataSettings,
    generate_training_set,
    make_training_pair,
    structure_names,
    write_shard,
)
from ._infer import AugmentResult, augment_volume, predict_tiled, training_sets
from ._model import UNet3D
from ._normalise import atom_peak_scale, gaussian_target, normalise_tomogram
from ._train import TrainResult, plot_learning_curve, train_unet, validation_loss
from ._weights import (
    AUTO_WEIGHTS,
    SHIPPED_WEIGHTS,
    choose_weights,
    load_weights,
    save_weights,
    shipped_weights,
    weights_digest,
    weights_file,
)

__all__ = [
    "AUTO_WEIGHTS",
    "AugmentResult",
    "SHIPPED_WEIGHTS",
    "TRAINING_DENOISE",
    "TRAINING_STRUCTURES",
    "TrainResult",
    "TrainingDataSettings",
    "UNet3D",
    "atom_peak_scale",
    "augment_volume",
    "choose_weights",
    "gaussian_target",
    "generate_training_set",
    "load_weights",
    "make_training_pair",
    "normalise_tomogram",
    "plot_learning_curve",
    "predict_tiled",
    "save_weights",
    "shipped_weights",
    "structure_names",
    "train_unet",
    "training_sets",
    "validation_loss",
    "weights_digest",
    "weights_file",
    "write_shard",
]
