"""The base of element-set modules: a new kind of element adds features and a decoder only."""

import numpy as np
import torch

from gde._constants import GDE_KEYS
from gde.module import ElementSetModule


class VectorSets(ElementSetModule):
    """Sets of 3-vectors: reference features = the vector, a linear featurizer, a
    Gaussian decoder with unit variance (what a new modality has to write)."""

    def __init__(self, **kwargs):
        super().__init__(
            3, 2, 4, reference_mean=np.full(3, 1.0), reference_std=np.full(3, 2.0), **kwargs
        )
        self.featurizer = torch.nn.Linear(3, 2)
        self.decoder = torch.nn.Linear(self.n_latent, 3)

    def input_counts(self, tensors):
        return tensors[GDE_KEYS.X_KEY].float()

    def reference_input(self, x, batch_index):
        return x

    def element_loss(self, target, condition):
        return 0.5 * ((target - self.decoder(condition)) ** 2).sum(-1)

    def draw(self, condition, scale: float = 1.0):
        mean = self.decoder(condition)
        return mean + scale * torch.randn_like(mean)


def _batch(n_sets=4, set_size=6):
    # each set: its own mean, spread 3 times wider than the elements around it
    x = 3.0 * torch.randn(n_sets, 1, 3) + torch.randn(n_sets, set_size, 3)
    return x, torch.zeros(n_sets, set_size, 1, dtype=torch.long)


def test_encoder_input_is_standardised_reference_then_learned_features():
    torch.manual_seed(0)
    module = VectorSets(n_latent=5, w2_weight=0.0, mean_path=False)
    x, batch = _batch()
    encoded = module.transform(x, batch)
    assert encoded.shape == (4, 6, 5)
    torch.testing.assert_close(encoded[..., :3], (x - 1.0) / 2.0)
    torch.testing.assert_close(encoded[..., 3:], module.featurizer(x))


def test_loss_reads_the_first_n_decode_elements_and_trains():
    torch.manual_seed(0)
    module = VectorSets(n_latent=5, w2_weight=0.0, mean_path=False)
    x, batch = _batch()
    out = module.inference(x, batch)
    # the decoder learns from n_decode = 4 of each set's 6 elements
    assert out["target"].shape == (4 * 4, 3)
    torch.testing.assert_close(out["target"][:4], x[0, :4])
    assert out["condition"].shape == (16, 5)
    opt = torch.optim.Adam(module.parameters(), lr=0.01)
    tensors = {GDE_KEYS.X_KEY: x}
    losses = []
    for _ in range(30):
        loss = module.loss(tensors, module.inference(x, batch), {}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # the set embedding carries each set's mean to the decoder
    assert losses[-1] < 0.5 * losses[0]


def test_generate_passes_the_decoders_options_to_draw():
    torch.manual_seed(0)
    module = VectorSets(n_latent=5, w2_weight=0.0, mean_path=False)
    z = torch.randn(2, 5)
    exact = module.generate(z, 3, scale=0.0)
    assert exact.shape == (6, 3)
    # without noise, each of a set's elements is its decoded mean
    torch.testing.assert_close(exact[:3], module.decoder(z[:1]).expand(3, 3))
    assert not torch.allclose(module.generate(z, 3), exact)
