"""What the discrete heads draw at a temperature: the tempered distribution, checked by frequencies.

Temperature ``T`` divides the logits (categorical, Bernoulli, the mixture weights of the logistic mixture) and
multiplies the logistic scales. Each test compares the frequencies of many draws with the exact tempered
probabilities under the sample-size bound of :mod:`sampling_stats`, and first checks that the bound is far below
the distance to the distribution of the opposite convention (``logits * T``), so that mistake cannot pass.
"""

from __future__ import annotations

import math

import pytest
import torch
from sampling_stats import frequencies, total_variation, tv_bound

from chainrule.core.heads import Bernoulli, Categorical
from chainrule.core.heads.logistic_mixture import DiscretizedLogisticMixture

N = 20_000
TEMPERATURES = (0.5, 2.0)
#: one logit vector per position: peaked, flat-ish and skewed
LOGITS = torch.tensor([[2.0, 0.5, -1.0, 0.0, 1.0], [0.3, -0.3, 0.8, -1.2, 0.1], [-2.0, 1.5, 0.0, 0.5, -0.5]])


def repeat_positions(params: torch.Tensor, n: int) -> torch.Tensor:
    """Per-position params ``(P, S)`` -> a batch ``(n, P, S)`` of identical rows."""
    return params.unsqueeze(0).expand(n, -1, -1).contiguous()


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_categorical_draws_follow_softmax_of_logits_over_t(temperature: float) -> None:
    levels = LOGITS.shape[1]
    head = Categorical(levels)
    params = repeat_positions(LOGITS.T, N)  # (N, K, S): one channel, the K logits of position s in column s
    draws = head.sample(params, temperature=temperature, generator=torch.Generator().manual_seed(0))
    assert draws.shape == (N, 1, LOGITS.shape[0])
    bound = tv_bound(N, levels)
    for pos, logits in enumerate(LOGITS):
        tempered = torch.softmax(logits.double() / temperature, 0)
        assert total_variation(tempered, torch.softmax(logits.double() * temperature, 0)) > 3 * bound
        tv = total_variation(frequencies(draws[:, 0, pos], levels), tempered)
        assert tv < bound, f"position {pos} at T={temperature}: TV {tv:.4f} >= {bound:.4f}"


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_bernoulli_draws_follow_sigmoid_of_logit_over_t(temperature: float) -> None:
    logits = torch.tensor([-1.5, 0.4, 2.0])
    draws = Bernoulli().sample(repeat_positions(logits[None], N), temperature=temperature,
                               generator=torch.Generator().manual_seed(1))
    assert draws.shape == (N, 1, 3) and set(draws.unique().tolist()) <= {0, 1}
    bound = tv_bound(N, 2)
    for pos, logit in enumerate(logits.double()):
        p = torch.sigmoid(logit / temperature)
        tempered = torch.stack([1 - p, p])
        wrong = torch.sigmoid(logit * temperature)
        assert total_variation(tempered, torch.stack([1 - wrong, wrong])) > 3 * bound
        tv = total_variation(frequencies(draws[:, 0, pos], 2), tempered)
        assert tv < bound, f"logit {float(logit)} at T={temperature}: TV {tv:.4f} >= {bound:.4f}"


def mixture_params(logits: list[float], means: list[float], log_scales: list[float]) -> torch.Tensor:
    """One channel's parameter vector in the head's layout ``[logits | means | log_scales]``."""
    return torch.tensor([*logits, *means, *log_scales], dtype=torch.float64)


def pmf(head: DiscretizedLogisticMixture, params: torch.Tensor) -> torch.Tensor:
    """Exact probabilities of all levels of one channel, from the head's own ``log_prob``."""
    x = torch.arange(head.levels).reshape(-1, 1, 1)
    return head.log_prob(params.reshape(1, -1, 1).expand(head.levels, -1, -1), x)[:, 0].exp()


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_logistic_mixture_draws_follow_the_tempered_mixture(temperature: float) -> None:
    """Sampling at ``T`` is the mixture with weights ``softmax(logits / T)`` and scales ``s * T``: exactly the
    head's own distribution at parameters ``(logits / T, means, log_scales + log T)``."""
    head = DiscretizedLogisticMixture(levels=16, num_mix=3)
    logits, means, log_scales = [1.5, 0.0, -1.0], [-0.7, 0.0, 0.6], [-2.5, -2.0, -2.2]
    params = mixture_params(logits, means, log_scales)
    tempered = pmf(head, mixture_params([v / temperature for v in logits], means,
                                        [v + math.log(temperature) for v in log_scales]))
    assert float(tempered.sum()) == pytest.approx(1.0, abs=1e-9)
    bound = tv_bound(N, head.levels)
    # both halves of the temperature show: weights at logits * T, or scales divided by T, are far away
    weights_wrong = pmf(head, mixture_params([v * temperature for v in logits], means,
                                             [v + math.log(temperature) for v in log_scales]))
    scales_wrong = pmf(head, mixture_params([v / temperature for v in logits], means,
                                            [v - math.log(temperature) for v in log_scales]))
    assert min(total_variation(tempered, weights_wrong), total_variation(tempered, scales_wrong)) > 3 * bound
    draws = head.sample(repeat_positions(params.float()[:, None], N), temperature=temperature,
                        generator=torch.Generator().manual_seed(2))
    tv = total_variation(frequencies(draws[:, 0, 0], head.levels), tempered)
    assert tv < bound, f"T={temperature}: TV {tv:.4f} >= {bound:.4f}"
