"""Noise schedule maths, pinned; the reverse process with a closed-form denoiser."""

import pytest
import torch

from gde.nn import ConditionalDenoiser, NoiseSchedule


def test_linear_schedule_pinned_values():
    # the same constants as Ho et al. (2020) / diffusers' DDPMScheduler
    s = NoiseSchedule(1000, "linear", beta_start=1e-4, beta_end=0.02)
    assert s.betas[0].item() == pytest.approx(1e-4)
    assert s.betas[-1].item() == pytest.approx(0.02)
    assert s.alphas_cumprod[-1].item() == pytest.approx(4.0358e-05, rel=1e-4)
    assert s.posterior_variance[0].item() == pytest.approx(0.0, abs=1e-12)
    assert s.posterior_variance[487].item() == pytest.approx(0.00979, abs=1e-5)
    assert s.posterior_variance[999].item() == pytest.approx(0.02, abs=1e-5)


def test_cosine_schedule_pinned_values():
    s = NoiseSchedule(1000, "cosine")
    assert s.alphas_cumprod[0].item() == pytest.approx(0.9999587, abs=1e-6)
    assert s.alphas_cumprod[499].item() == pytest.approx(0.4938436, abs=1e-6)
    assert s.betas.max().item() == pytest.approx(0.999)
    assert (torch.diff(s.alphas_cumprod) < 0).all()


def test_bad_schedule():
    with pytest.raises(ValueError, match="schedule must be"):
        NoiseSchedule(10, "quadratic")


def test_add_noise_and_predict_x0_invert():
    s = NoiseSchedule(100, "linear")
    x0, noise = torch.randn(8, 3), torch.randn(8, 3)
    t = torch.tensor([0, 5, 10, 20, 40, 60, 80, 99])
    x_t = s.add_noise(x0, noise, t)
    ab = s.alphas_cumprod[t].float()[:, None]
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * noise)
    torch.testing.assert_close(s.predict_x0(x_t, noise, t), x0, atol=1e-4, rtol=1e-4)


def test_ancestral_step_matches_eps_formula():
    # without clipping, the x0-parameterised mean equals Ho et al.'s eps form
    s = NoiseSchedule(50, "cosine")
    x_t, eps = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    t = 30
    mean = (x_t - s.betas[t] / (1 - s.alphas_cumprod[t]).sqrt() * eps) / s.alphas[t].sqrt()
    torch.testing.assert_close(
        s.step(eps, 0, x_t),
        (x_t - s.betas[0] / (1 - s.alphas_cumprod[0]).sqrt() * eps) / s.alphas[0].sqrt(),
    )
    g = torch.Generator().manual_seed(0)
    draw = s.step(eps, t, x_t, generator=g)
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(0), dtype=x_t.dtype)
    torch.testing.assert_close(draw, mean + s.posterior_variance[t].sqrt() * noise)


def _gaussian_eps(schedule, mu, sigma):
    """Exact E[eps | x_t] for data ~ N(mu, sigma^2 I)."""

    def eps_fn(x_t, t):
        ab = schedule.alphas_cumprod[t].to(x_t.dtype)[:, None]
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * mu) / (ab * sigma**2 + 1 - ab)

    return eps_fn


@pytest.mark.parametrize("n_steps", [None, 50])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_reverse_process_recovers_gaussian(kind, n_steps):
    schedule = NoiseSchedule(1000, kind)
    mu, sigma = torch.tensor([1.5, -2.0, 0.5]), 0.7
    g = torch.Generator().manual_seed(0)
    x = schedule.sample(
        _gaussian_eps(schedule, mu, sigma), (20_000, 3), n_inference_steps=n_steps, generator=g
    )
    # 50 DDIM steps shrink the spread by a few percent; the full chain does not
    tol = 0.02 if n_steps is None else 0.04
    torch.testing.assert_close(x.mean(0), mu, atol=0.02, rtol=0)
    torch.testing.assert_close(x.std(0), torch.full((3,), sigma), atol=tol, rtol=0)


def test_ddim_with_eta_one_is_stochastic_and_eta_zero_deterministic():
    schedule = NoiseSchedule(100, "linear")
    eps_fn = _gaussian_eps(schedule, torch.zeros(2), 1.0)
    x_t = torch.randn(5, 2)
    a = schedule.ddim_step(eps_fn(x_t, torch.full((5,), 50)), 50, 40, x_t, eta=0.0)
    b = schedule.ddim_step(eps_fn(x_t, torch.full((5,), 50)), 50, 40, x_t, eta=0.0)
    c = schedule.ddim_step(eps_fn(x_t, torch.full((5,), 50)), 50, 40, x_t, eta=1.0)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_clipping_bounds_the_prediction():
    schedule = NoiseSchedule(100, "cosine")
    x_t = torch.randn(1000, 2)
    wild = torch.randn(1000, 2) * 50  # a badly wrong noise prediction
    out = schedule.ddim_step(wild, 99, -1, x_t, clip_x0=3.0)
    assert out.abs().max() <= 3.0 + 1e-5


def test_timesteps():
    s = NoiseSchedule(1000)
    assert s.timesteps() == list(range(999, -1, -1))
    ts = s.timesteps(50)
    assert len(ts) == 50 and ts[0] == 999 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError):
        s.timesteps(0)


def test_denoiser_condition_dropout_and_guidance():
    torch.manual_seed(0)
    net = ConditionalDenoiser(3, 4, n_hidden=16, n_blocks=2, cond_dropout=0.5)
    # break the zero-initialised output so predictions depend on the inputs
    torch.nn.init.normal_(net.output[1].weight)
    x, t, c = torch.randn(6, 3), torch.randint(0, 100, (6,)), torch.randn(6, 4)
    net.eval()
    cond = net(x, t, c, drop_cond=torch.zeros(6, dtype=torch.bool))
    uncond = net(x, t, c, drop_cond=torch.ones(6, dtype=torch.bool))
    torch.testing.assert_close(net.guided(x, t, c, 1.0), cond)
    torch.testing.assert_close(net.guided(x, t, c, 3.0), uncond + 3.0 * (cond - uncond))
    # the unconditional prediction ignores the condition
    torch.testing.assert_close(
        uncond, net(x, t, torch.randn(6, 4), drop_cond=torch.ones(6, dtype=torch.bool))
    )
    net.train()  # conditions are now dropped at random: repeated calls differ
    torch.manual_seed(1)
    outs = [net(x, t, c) for _ in range(10)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_fast_sampler_equals_guided_prediction(scale):
    torch.manual_seed(0)
    net = ConditionalDenoiser(3, 4, n_hidden=16, n_blocks=2, cond_dropout=0.2)
    torch.nn.init.normal_(net.output[1].weight)
    torch.nn.init.normal_(net.null_cond)
    net.eval()
    # three distinct conditions repeated over 12 rows, as when sampling cells of 3 sets
    c = torch.randn(3, 4).repeat_interleave(4, dim=0)
    x = torch.randn(12, 3)
    eps_fn = net.sampler(c, scale)
    for step in (0, 37, 99):
        t = torch.full((12,), step)
        torch.testing.assert_close(eps_fn(x, t), net.guided(x, t, c, scale))


def test_guidance_only_within_its_steps():
    torch.manual_seed(0)
    net = ConditionalDenoiser(3, 4, n_hidden=16, n_blocks=2, cond_dropout=0.2)
    torch.nn.init.normal_(net.output[1].weight)
    torch.nn.init.normal_(net.null_cond)
    net.eval()
    c, x = torch.randn(6, 4), torch.randn(6, 3)
    schedule = NoiseSchedule(400)
    steps = schedule.steps_within((0.25, 0.75))
    assert steps == (100, 300)
    eps_fn = net.sampler(c, 2.0, steps)
    for step, guided in ((99, False), (100, True), (299, True), (300, False), (399, False)):
        t = torch.full((6,), step)
        want = net.guided(x, t, c, 2.0 if guided else 1.0)
        torch.testing.assert_close(eps_fn(x, t), want)
    assert schedule.steps_within(None) is None
    assert schedule.steps_within((0.0, 1.0)) == (0, 400)  # every step
    for bad in ((0.5, 0.5), (-0.1, 0.5), (0.2, 1.5)):
        with pytest.raises(ValueError, match="guidance_interval"):
            schedule.steps_within(bad)


@pytest.mark.parametrize("n_steps", [50, 400, 1000])
def test_default_linear_schedule_ends_in_pure_noise(n_steps):
    s = NoiseSchedule(n_steps, "linear")
    assert s.alphas_cumprod[-1].item() < 1e-4
    assert s.betas[0].item() == pytest.approx(1e-4 * 1000 / n_steps)
