"""Registry keys shared by the model and data layers."""

from scvi import REGISTRY_KEYS as SCVI_KEYS


class _GDEKeys:
    X_KEY = SCVI_KEYS.X_KEY
    PROTEIN_KEY = SCVI_KEYS.PROTEIN_EXP_KEY
    SET_KEY = "set"
    BATCH_KEY = SCVI_KEYS.BATCH_KEY
    CAT_COVS_KEY = SCVI_KEYS.CAT_COVS_KEY
    CONT_COVS_KEY = SCVI_KEYS.CONT_COVS_KEY
    # not registered: W2 between the minibatch's sets, added to a minibatch by the
    # training plan, (n_sets, n_sets)
    W2_TARGET_KEY = "w2_target"


GDE_KEYS = _GDEKeys()
