"""ImageGDEModel: one embedding per set of images (a well, a perturbation, a patient)."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import rich.pretty  # noqa: F401  scvi-tools' view_anndata_setup uses rich.pretty unimported
from anndata import AnnData
from scvi import settings

from gde._anndata_utils import check_backed_view, check_obs_columns, check_set_column
from gde._constants import GDE_KEYS
from gde._pca import reference_rows, reference_statistics
from gde.model import SetModelBase
from gde.module import SetImageModule, scale_pixels

from ._field import ImageField, registered_images
from ._guidance import CANDIDATES, guidance_scores, resolve_guidance

# images whose pixels are summarised at setup (mean, sd, principal axes)
_N_REFERENCE = 20_000


class ImageGDEModel(SetModelBase):
    """Generative distribution embeddings of sets of images.

    Learns one vector per set of images (the cell crops of a well or a perturbation, a
    patient's slides) such that a conditional diffusion model, given the vector,
    generates images distributed like the set's. Each image enters the same mean-pooled
    set encoder as :class:`gde.GDEModel` through its pixels and a small convolutional
    featurizer (GroupNorm, so no information passes between sets); a conditional U-Net
    (:class:`gde.nn.ConditionalUNet`) denoises images with the set embedding injected at
    every resolution. Embeddings are invariant to the order and to the replication of a
    set's images, sets of any size embed in chunks, and sets never seen in training
    embed without retraining.

    Parameters
    ----------
    adata
        AnnData registered with :meth:`setup_anndata`.
    n_latent
        Dimension of the set embedding.
    n_features
        Learned features per image (besides its pixels).
    n_set_hidden, n_set_blocks
        Width and number of pooled residual blocks of the set encoder.
    base_channels, channel_mults
        Size of the U-Net: channels at the first resolution, and their multiple at each
        resolution (each after the first halves height and width).
    n_diffusion_steps
        Steps of the diffusion process.
    n_decode
        Images per set in a minibatch that the denoiser learns from.
    w2_weight
        Weight of the W2-matching term: latent distances between sets are pulled towards
        the 2-Wasserstein distance between their images in a fixed space, the top
        ``w2_n_comps`` principal components of the pixels. ``0``: the denoising loss alone.
    w2_pairs, w2_solver, w2_n_comps, w2_n_cells
        Pairs of sets per step, OT solver, components and images per set of the W2 term
        (as in :class:`gde.GDEModel`).
    w2_debias
        Subtract the sampling floor from the W2 targets (see :class:`gde.GDEModel`).
    mean_path
        Start the embedding at the set means of the pixels projected on their principal
        axes (a pixel-mean pseudobulk); training adds what they miss.
    **module_kwargs
        Passed to :class:`gde.module.SetImageModule` (e.g. ``featurizer_widths``,
        ``cond_dropout``, ``noise_schedule``, ``set_kl_weight``).

    Notes
    -----
    ``train()`` keeps a moving average of the weights (``weight_ema=0.999``,
    :class:`gde.model.WeightEMA`) and waits 2,000 steps without progress before stopping
    (``early_stopping_patience``), as diffusion decoders need: on the digit mixtures at
    4,300 steps the average raised the held-out Spearman from 0.926 to 0.938 and cut the
    class-proportion error of generated images from 0.331 to 0.293 (``docs/images.md``).
    It also replaces half of the sets it draws by mixtures of two training sets
    (``mix_sets=0.5``), and the W2 term works in 50 principal components: together they
    raised the digit mixtures' held-out Spearman from 0.938 to 0.948, and moved the
    class-proportion error of unguided images from 0.247 to 0.278. With the default
    guided sampler mixing helps both: without it (``train(mix_sets=0)``) the held-out
    Spearman was 0.939 against 0.947 and the error 0.241 against 0.216.

    The geometry of the embedding generalises to new sets only when the model has seen
    many sets. On digit mixtures with 60 training sets, the held-out sets' Spearman
    with the ground truth peaked near 600 steps (0.864) and fell to 0.813 by 1,800
    steps while the training sets' kept rising (0.895 to 0.909): the encoder learns the
    training sets rather than the map from images to distances. With 240 training sets
    the two stayed level (0.883 held out, 0.889 training, at 1,800 steps). With few
    sets, use more of them (split large wells or perturbations into several sets with
    :func:`gde.pp.make_sets`) or compare sets with the pixel-mean pseudobulk
    (:func:`gde.tl.pixel_mean_embedding`). Mixing training sets
    (the default here) raised the held-out Spearman on those 60 sets by 0.034 on average
    over three training seeds.


    Examples
    --------
    >>> adata = gde.datasets.digit_sets(n_sets=40)
    >>> gde.image.ImageGDEModel.setup_anndata(adata, set_key="set")
    >>> model = gde.image.ImageGDEModel(adata)
    >>> model.train()
    >>> emb = model.get_distribution_embeddings()
    >>> model.tune_guidance()  # the sampler's guidance, chosen on the validation sets
    >>> new = model.sample(sets=["set_00"], n_images=16)
    """

    _default_set_size = 64
    _default_weight_ema = 0.999
    _default_mix_sets = 0.5

    def _default_patience_steps(self) -> int:
        # the denoising loss is noisy (random timesteps) and keeps falling for thousands
        # of steps after the embedding has settled
        return 2000

    def __init__(
        self,
        adata: AnnData,
        n_latent: int = 32,
        n_features: int = 32,
        n_set_hidden: int = 128,
        n_set_blocks: int = 2,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2, 2),
        n_diffusion_steps: int = 400,
        n_decode: int = 16,
        w2_weight: float = 1.0,
        w2_pairs: int = 48,
        w2_solver: str = "auto",
        w2_n_comps: int = 50,
        w2_n_cells: int = 128,
        w2_debias: bool = True,
        mean_path: bool = True,
        **module_kwargs,
    ):
        super().__init__(adata, w2_n_cells=w2_n_cells, w2_debias=w2_debias)
        info = registered_images(self.adata_manager, GDE_KEYS.X_KEY)
        images = self.adata_manager.get_from_registry(GDE_KEYS.X_KEY)
        rows = reference_rows(len(images), _N_REFERENCE, settings.seed or 0, salt=13)
        pixels = scale_pixels(np.asarray(images[rows], dtype=np.float64), info["pixel_range"])
        stats = reference_statistics(
            pixels.reshape(len(rows), -1), max(w2_n_comps, n_latent), standardise=False
        )
        self.module = SetImageModule(
            info["image_shape"],
            n_batch=self.summary_stats.n_batch,
            n_latent=n_latent,
            n_features=n_features,
            n_set_hidden=n_set_hidden,
            n_set_blocks=n_set_blocks,
            pixel_range=info["pixel_range"],
            channel_axis=info["channel_axis"],
            base_channels=base_channels,
            channel_mults=channel_mults,
            n_diffusion_steps=n_diffusion_steps,
            n_decode=n_decode,
            w2_weight=w2_weight,
            w2_pairs=w2_pairs,
            w2_solver=w2_solver,
            w2_n_comps=w2_n_comps,
            mean_path=mean_path,
            **{**stats, **module_kwargs},
        )
        c, h, w = info["image_shape"]
        self._model_summary_string = (
            f"ImageGDEModel: {self.summary_stats.n_set} sets of {c}×{h}×{w} images; set "
            f"embedding n_latent={n_latent} (pixels + convolutional features"
            + (", mean path" if mean_path else "")
            + (f", W2-matching weight {w2_weight}" if w2_weight else "")
            + f"); decoder: conditional U-Net DDPM ({n_diffusion_steps} steps, channels "
            f"{base_channels}×{tuple(channel_mults)}); n_batch={self.summary_stats.n_batch}."
        )
        self.guidance_ = None
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        set_key: str,
        image_key: str = "X_image",
        batch_key: str | None = None,
        **kwargs,
    ) -> None:
        """Register an AnnData of images (one per row) for :class:`ImageGDEModel`.

        The images are read from ``adata.obsm[image_key]``: ``(n, H, W)`` grey images or
        ``(n, C, H, W)`` with channels first, uint8 (scaled from ``0..255``) or float
        (scaled from the data's range, recorded at registration). Registration writes
        scvi-tools' ``adata.uns['_scvi_uuid']`` and ``adata.uns['_scvi_manager_uuid']``
        and the code columns ``adata.obs['_scvi_set']`` and ``adata.obs['_scvi_batch']``;
        nothing else in ``adata`` changes (the images are not copied).

        Parameters
        ----------
        adata
            One row per image (see :func:`gde.image.images_to_adata`).
        set_key
            Column of ``adata.obs`` naming each image's set.
        image_key
            Key of ``adata.obsm`` holding the images.
        batch_key
            Column of ``adata.obs`` with each image's batch (plate, microscope); the
            denoiser conditions on it.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        check_backed_view(adata)
        check_set_column(adata, set_key)
        check_obs_columns(adata, [batch_key] if batch_key else None, "batch_key")
        setup_method_args = cls._get_setup_method_args(**locals())
        field = ImageField(GDE_KEYS.X_KEY, image_key)
        cls._register_fields(adata, field, set_key, batch_key, setup_method_args, **kwargs)

    # ---------------------------------------------------------------- hooks
    @property
    def image_key(self) -> str:
        """The ``adata.obsm`` key of the images."""
        return self._setup_args["image_key"]

    @property
    def feature_names(self) -> pd.Index:
        """The pixels, ``c{channel}_y{row}_x{column}``."""
        c, h, w = self.module.image_shape
        grid = np.indices((c, h, w)).reshape(3, -1).T
        return pd.Index([f"c{a}_y{b}_x{d}" for a, b, d in grid])

    def _check_new_adata(self, adata: AnnData) -> None:
        check_set_column(adata, self.set_key)  # the images are checked as they register

    def _result_params(self) -> dict:
        return {"image_key": self.image_key}

    def _generated_adata(self, x, obs: pd.DataFrame) -> AnnData:
        info = registered_images(self.adata_manager, GDE_KEYS.X_KEY)
        images = np.asarray(x, dtype=np.float32)
        if info["dtype"] == "uint8":
            images = np.rint(images).clip(0, 255).astype(np.uint8)
        if not info["channel_axis"]:
            images = images[:, 0]
        out = ad.AnnData(np.zeros((len(obs), 0), dtype=np.float32), obs=obs)
        out.obsm[self.image_key] = images
        return out

    # ------------------------------------------------------------ generation
    def sample(
        self,
        sets: Sequence[str] | None = None,
        embeddings: pd.DataFrame | np.ndarray | None = None,
        n_images: int = 16,
        *,
        adata: AnnData | None = None,
        batch: str | None = None,
        seed: int | None = None,
        n_steps: int | None = 50,
        guidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | str | None = "auto",
        batch_size: int = 512,
    ) -> AnnData:
        """Generate new images from sets or from arbitrary points of the embedding space.

        Parameters
        ----------
        sets
            Names of sets to generate from (embedded from all their images); all sets of
            ``adata`` by default.
        embeddings
            Instead of ``sets``: vectors to decode, a DataFrame (its index names them) or
            an array ``(n, n_latent)``.
        n_images
            Images generated per set or embedding.
        adata
            AnnData holding ``sets``; the training data by default.
        batch
            Batch to generate in; by default each set's most common batch.
        seed
            Seed for reproducible draws (the global random state is left untouched).
        n_steps
            DDIM steps (``None``: ancestral sampling over all diffusion steps, slower).
        guidance_scale
            Classifier-free guidance scale (1: none; above 1 sharper, less diverse).
            ``None``: the scale :meth:`tune_guidance` chose, or 2 if it has not run.
        guidance_interval
            ``(start, end)``: guide only this part of the diffusion time (fractions, 0
            the clean image, 1 pure noise); ``None``: all of it; ``"auto"``: the interval
            :meth:`tune_guidance` chose, or ``(0.25, 0.75)`` if it has not run. Guidance
            near pure noise decides which class an image becomes, later it sharpens it;
            which a model needs depends on the data (:meth:`tune_guidance`). Guided
            steps cost a second denoiser pass. ``guidance_scale=1`` turns guidance off.
        batch_size
            Images generated at once.

        Returns
        -------
        AnnData with one row per generated image: the images in ``obsm[image_key]``, in
        the layout and units of the training images (uint8 if they were uint8), an
        empty ``X``, and the set column (named as at setup) naming the source set or
        embedding.
        """
        options = self._sampler_kwargs(n_steps, *self._guidance(guidance_scale, guidance_interval))
        return self._sample(sets, embeddings, n_images, adata, batch, seed, batch_size, options)

    def interpolate(
        self,
        set_a: str,
        set_b: str,
        n_points: int = 5,
        n_images: int = 16,
        *,
        adata: AnnData | None = None,
        batch: str | None = None,
        seed: int | None = None,
        n_steps: int | None = 50,
        guidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | str | None = "auto",
        batch_size: int = 512,
    ) -> AnnData:
        """Generate images along the straight line between two sets' embeddings.

        Parameters
        ----------
        set_a, set_b
            The two sets (embedded from all their images).
        n_points
            Number of points on the line, ends included.
        n_images
            Images generated per point.
        adata, batch, seed, n_steps, guidance_scale, guidance_interval, batch_size
            As in :meth:`sample`.

        Returns
        -------
        AnnData as from :meth:`sample`, with ``obs['point']`` (0 at ``set_a`` to
        ``n_points - 1`` at ``set_b``) and ``obs['weight']`` (the weight of ``set_b``);
        ``uns['interpolation']`` records the two sets.
        """
        options = self._sampler_kwargs(n_steps, *self._guidance(guidance_scale, guidance_interval))
        return self._interpolate(
            set_a, set_b, n_points, n_images, adata, batch, seed, batch_size, options
        )

    def _guidance(self, scale: float | None, interval) -> tuple:
        # guidance_ is absent from models saved before it existed
        return resolve_guidance(getattr(self, "guidance_", None), scale, interval)

    def tune_guidance(
        self,
        sets: Sequence[str] | None = None,
        *,
        adata: AnnData | None = None,
        candidates: Sequence[tuple[float, tuple[float, float] | None]] = CANDIDATES,
        n_images: int = 32,
        n_steps: int | None = 50,
        seed: int = 0,
        batch_size: int = 512,
    ) -> pd.DataFrame:
        """Choose the sampler's guidance on sets the model did not train on.

        For each candidate ``(guidance_scale, guidance_interval)``, generates
        ``n_images`` images from each set's embedding and measures the debiased Sinkhorn
        divergence between them and the set's real images (top 50 principal components
        of those images); the candidate with the lowest mean becomes the default of
        :meth:`sample` and :meth:`interpolate` (``guidance_``, saved with the model).
        No labels are needed. The best setting depends on the data: guidance near pure
        noise tilts digit mixtures' shares towards a set's commonest digit, and keeps
        classes a set does not hold out of Fashion-MNIST mixtures (``docs/images.md``).

        Parameters
        ----------
        sets
            Sets to compare on; by default the validation sets that :meth:`train` held
            out (sets it trained on would favour copying them).
        adata
            AnnData holding ``sets``; the training data by default.
        candidates
            ``(guidance_scale, guidance_interval)`` pairs, as :meth:`sample` takes them;
            by default none, 2 and 3 over ``(0.25, 0.75)``, 2 over ``(0.25, 1)`` and 2
            over all of the diffusion time.
        n_images
            Images generated per set and candidate.
        n_steps
            DDIM steps, as in :meth:`sample` (use the same when sampling).
        seed
            Seed of the draws (the same for every candidate).
        batch_size
            Images generated at once.

        Returns
        -------
        One row per candidate: ``guidance_scale``, ``guidance_interval``, ``sinkhorn``
        (squared pixel units) and ``chosen``.
        """
        scores = guidance_scores(
            self, sets, adata, candidates, n_images, n_steps, seed, batch_size
        )
        best = scores.loc[scores["chosen"]].iloc[0]
        self.guidance_ = (float(best["guidance_scale"]), best["guidance_interval"])
        return scores
