"""Building blocks: set encoders and pooling, count and Gaussian decoders, diffusion."""

from ._count_decoder import COUNT_LIKELIHOODS, CountDecoder, count_distribution
from ._denoiser import ConditionalDenoiser, timestep_embedding
from ._diffusion import NoiseSchedule
from ._normal_decoder import NormalDecoder
from ._pooling import SegmentPool, pool
from ._set_encoder import PooledResidualBlock, SetEncoder, one_hot_covariates

__all__ = [
    "COUNT_LIKELIHOODS",
    "ConditionalDenoiser",
    "CountDecoder",
    "NoiseSchedule",
    "NormalDecoder",
    "PooledResidualBlock",
    "SegmentPool",
    "SetEncoder",
    "count_distribution",
    "one_hot_covariates",
    "pool",
    "timestep_embedding",
]
