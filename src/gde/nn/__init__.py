"""Building blocks: set encoders and pooling, count and Gaussian decoders, diffusion."""

# Not public (not in __all__): COUNT_LIKELIHOODS, PairwiseW2, log_library and
# one_hot_covariates stay importable from here while gde.model and gde.module import them.
from ._count_decoder import COUNT_LIKELIHOODS, CountDecoder, log_library  # noqa: F401
from ._denoiser import ConditionalDenoiser
from ._diffusion import NoiseSchedule
from ._kme import KernelMeanEncoder
from ._normal_decoder import NormalDecoder
from ._ot import PairwiseW2  # noqa: F401
from ._pooling import SegmentPool, pool
from ._prior import SetMixturePrior
from ._set_encoder import SetEncoder, one_hot_covariates  # noqa: F401

__all__ = [
    "ConditionalDenoiser",
    "CountDecoder",
    "KernelMeanEncoder",
    "NoiseSchedule",
    "NormalDecoder",
    "SegmentPool",
    "SetEncoder",
    "SetMixturePrior",
    "pool",
]
