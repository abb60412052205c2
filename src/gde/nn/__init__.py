"""Building blocks: set encoders and pooling, count decoders."""

from ._count_decoder import COUNT_LIKELIHOODS, CountDecoder, count_distribution
from ._pooling import SegmentPool, pool
from ._set_encoder import PooledResidualBlock, SetEncoder, one_hot_covariates

__all__ = [
    "COUNT_LIKELIHOODS",
    "CountDecoder",
    "PooledResidualBlock",
    "SegmentPool",
    "SetEncoder",
    "count_distribution",
    "one_hot_covariates",
    "pool",
]
