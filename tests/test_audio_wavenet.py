"""WaveNet: Fast WaveNet queues give the naive conditionals and samples, causality and the receptive field by
gradients, normalisation, global and local conditioning."""

from __future__ import annotations

import itertools

import pytest
import torch

from chainrule.core.contract import Condition
from chainrule.core.errors import InputError
from chainrule.modalities.audio.generation import generate, window_params
from chainrule.modalities.registry import build_model


def wavenet(length=40, levels=256, seed=0, **options):
    torch.manual_seed(seed)
    opts = {"channels": 6, "skip_channels": 5, "stacks": 2, "layers_per_stack": 3, **options}
    model = build_model("wavenet", (1, length), levels, modality="audio", **opts)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)  # random weights: no zero gradient by accident
    return model.eval()


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_queued_and_naive_generation_give_identical_samples(temperature):
    model = wavenet(levels=16, num_classes=3)
    with torch.no_grad():
        model.out2.weight.mul_(8.0)  # peaked conditionals: a wrong one changes the draws
    assert model.receptive_field == 16  # so 40 samples slide the naive window
    labels = torch.tensor([0, 2, 1])
    a = generate(model, 3, 40, labels, temperature, use_cache=True, generator=torch.Generator().manual_seed(5))
    b = generate(model, 3, 40, labels, temperature, use_cache=False, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    assert len(torch.unique(a)) > 5  # real samples, not a constant


def test_queued_conditionals_equal_naive_and_full_ones():
    model = wavenet(length=36, num_classes=2)
    x = torch.randint(0, 256, (2, 1, 36))
    labels = torch.tensor([1, 0])
    full = model(x, labels)
    cache, prev = model.init_cache(2, labels), None
    for t in range(36):
        params, cache = model.step(prev, cache)
        torch.testing.assert_close(params, full[:, :, t], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(window_params(model, x, t, labels), full[:, :, t], rtol=1e-5, atol=1e-5)
        prev = x[:, :, t]


def test_causal_with_the_stated_receptive_field():
    model = wavenet(length=48)
    inputs = (torch.rand(1, 1, 48) * 2 - 1).requires_grad_(True)
    out = model.network(inputs)
    rf = model.receptive_field
    for t in (0, 5, 20, 47):
        (grad,) = torch.autograd.grad(out[0, :, t].sum(), inputs, retain_graph=True)
        seen = grad[0, 0].abs() > 0
        assert not seen[t:].any(), f"position {t} sees the present or future"
        assert not seen[: max(0, t - rf)].any(), f"position {t} sees beyond its receptive field"
        if t > 0:
            assert seen[max(0, t - rf):t].all(), f"position {t} ignores part of its receptive field"


@pytest.mark.parametrize("levels,head", [(4, None), (6, "logistic_mixture")])
def test_normalised_over_every_sequence(levels, head):
    model = wavenet(length=3, levels=levels, head=head)
    xs = torch.tensor(list(itertools.product(range(levels), repeat=3))).reshape(-1, 1, 3)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(xs), 0)
    assert abs(float(total)) < 1e-4


def test_sixteen_bit_defaults_to_the_logistic_mixture():
    model = build_model("wavenet", (1, 8), 65536, modality="audio", channels=4, skip_channels=4, layers_per_stack=2)
    assert model.head.name == "logistic_mixture"
    assert torch.isfinite(model.log_prob(torch.randint(0, 65536, (2, 1, 8)))).all()


def test_global_condition_changes_the_conditionals():
    model = wavenet(num_classes=2)
    x = torch.randint(0, 256, (1, 1, 40)).repeat(2, 1, 1)
    out = model(x, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])


def test_local_conditioning_frames_start_acting_at_their_own_samples():
    hop, frames = 4, 10
    model = wavenet(length=40, local_channels=3, local_hop=hop)
    x = torch.randint(0, 256, (1, 1, 40))
    mel = torch.randn(1, frames, 3)
    base = model(x, Condition(time_features=mel))
    changed = mel.clone()
    changed[0, 5] += 1.0  # frame 5 = samples 20..23
    diff = (model(x, Condition(time_features=changed)) - base).abs().amax(1)[0] > 1e-6
    assert diff[20:24].all() and not diff[:20].any()  # never earlier samples (later ones through the layers)
    cache, prev = model.init_cache(1, Condition(time_features=mel), length=40), None
    for t in range(40):  # the queued step reads the same upsampled frames
        params, cache = model.step(prev, cache)
        torch.testing.assert_close(params, base[:, :, t], rtol=1e-5, atol=1e-5)
        prev = x[:, :, t]
    with pytest.raises(InputError, match="locally conditioned"):
        model(x)
    with pytest.raises(InputError, match="cover fewer"):
        model(x, Condition(time_features=mel[:, :5]))
