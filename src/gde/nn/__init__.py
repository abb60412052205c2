"""Building blocks: set encoders and pooling, count and Gaussian decoders, diffusion."""

from ._count_decoder import COUNT_LIKELIHOODS, CountDecoder, count_distribution, log_library
from ._denoiser import ConditionalDenoiser, timestep_embedding
from ._diffusion import NoiseSchedule
from ._kme import KernelMeanEncoder
from ._normal_decoder import NormalDecoder
from ._ot import PairwiseW2, batch_w2_squared, exact_w2_squared, sinkhorn_cost, sinkhorn_divergence
from ._pooling import SegmentPool, pool
from ._prior import SetMixturePrior, mmd_to_standard_normal
from ._set_encoder import PooledResidualBlock, SetEncoder, one_hot_covariates

__all__ = [
    "COUNT_LIKELIHOODS",
    "ConditionalDenoiser",
    "CountDecoder",
    "KernelMeanEncoder",
    "NoiseSchedule",
    "NormalDecoder",
    "PairwiseW2",
    "PooledResidualBlock",
    "SegmentPool",
    "SetEncoder",
    "SetMixturePrior",
    "batch_w2_squared",
    "count_distribution",
    "log_library",
    "mmd_to_standard_normal",
    "exact_w2_squared",
    "one_hot_covariates",
    "pool",
    "sinkhorn_cost",
    "sinkhorn_divergence",
    "timestep_embedding",
]
