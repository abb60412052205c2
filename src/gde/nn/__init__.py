"""Building blocks: set encoders and pooling, featurizers and decoders, diffusion."""

# Not public (not in __all__): the types and helpers gde.model and gde.module import
# from here (likelihood and dispersion names, W2 targets, segment and covariate helpers).
from ._count_decoder import (  # noqa: F401
    COUNT_LIKELIHOODS,
    CountDecoder,
    Dispersion,
    LinearSkip,
    log_library,
    split_segments,
)
from ._denoiser import ConditionalDenoiser, GuidedDenoiser
from ._diffusion import NoiseSchedule, Schedule  # noqa: F401
from ._image import ConditionalUNet, ImageFeaturizer
from ._kme import KernelMeanEncoder
from ._normal_decoder import NormalDecoder
from ._ot import OTSolver, PairwiseW2, batch_w2_squared  # noqa: F401
from ._pooling import Pooling, SegmentPool, pool  # noqa: F401
from ._prior import SetMixturePrior, mmd_to_standard_normal  # noqa: F401
from ._sequence import (  # noqa: F401
    END,
    FIRST_LETTER,
    PAD,
    PrefixDecoder,
    SequenceFeaturizer,
    kmer_frequencies,
)
from ._set_encoder import SetEncoder, one_hot_covariates  # noqa: F401

__all__ = [
    "ConditionalDenoiser",
    "ConditionalUNet",
    "CountDecoder",
    "GuidedDenoiser",
    "ImageFeaturizer",
    "KernelMeanEncoder",
    "LinearSkip",
    "NoiseSchedule",
    "NormalDecoder",
    "PrefixDecoder",
    "SegmentPool",
    "SetEncoder",
    "SequenceFeaturizer",
    "SetMixturePrior",
    "pool",
]
