"""PixelLSTM: the cached step path matches the teacher-forced path."""

from __future__ import annotations

import pytest
import torch

from chainrule.modalities.registry import build_model


@pytest.mark.parametrize(("shape", "levels", "head", "classes"), [
    ((1, 4, 3), 2, None, 0),
    ((3, 3, 3), 5, "logistic_mixture", 0),
    ((1, 3, 4), 4, "categorical", 3),
])
def test_step_equals_forward_and_cached_sampling_is_identical(shape, levels, head, classes) -> None:
    torch.manual_seed(0)
    model = build_model("pixel_lstm", shape, levels, num_classes=classes, head=head,
                        hidden_size=16, num_layers=2, embed_dim=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.4)
    n = 6
    cond = torch.arange(n) % classes if classes else None
    a = model.sample(n, cond=cond, use_cache=True, generator=torch.Generator().manual_seed(3))
    b = model.sample(n, cond=cond, use_cache=False, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with torch.no_grad():
        full = model(a, cond).reshape(n, model.num_params_out, -1)
        cache = model.init_cache(n, cond)
        prev = None
        for pos in model.ordering().tolist():
            params, cache = model.step(prev, cache)
            torch.testing.assert_close(params, full[:, :, pos], rtol=0, atol=1e-5)
            prev = a.reshape(n, shape[0], -1)[:, :, pos]


def test_locations_option_changes_input_size() -> None:
    with_loc = build_model("pixel_lstm", (1, 5, 7), 2, hidden_size=8)
    without = build_model("pixel_lstm", (1, 5, 7), 2, hidden_size=8, locations=False)
    assert with_loc.lstm.input_size == without.lstm.input_size + 5 + 7
    x = torch.randint(0, 2, (2, 1, 5, 7))
    assert without.log_prob(x).shape == (2,)
