"""The planted bugs: each one replaces ``old`` (exactly one occurrence) by ``new`` in ``file`` (relative to
``src/chainrule``), and at least one of ``tests`` (pytest node ids) must then fail. Adding a bug is one entry."""

from __future__ import annotations

from typing import NamedTuple


class Mutant(NamedTuple):
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


DIST = "tests/test_sampling_distributions.py"
COMPLETE = "tests/test_complete.py"
TEXT_EVAL = "tests/test_text_eval.py"
PATHS = "tests/test_ts_paths.py"
SCALE = "tests/test_ts_scale.py"
TS_LEARNING = "tests/test_ts_learning.py"

MUTANTS: list[Mutant] = [
    Mutant("categorical-temperature-multiplies", "core/heads/categorical.py",
           "softmax(logits / temperature", "softmax(logits * temperature",
           (f"{DIST}::test_categorical_draws_follow_softmax_of_logits_over_t",)),
    Mutant("bernoulli-temperature-multiplies", "core/heads/bernoulli.py",
           "sigmoid(params / max(temperature", "sigmoid(params * max(temperature",
           (f"{DIST}::test_bernoulli_draws_follow_sigmoid_of_logit_over_t",)),
    Mutant("mixture-weights-temperature-multiplies", "core/heads/logistic_mixture.py",
           "softmax(flat_logits / temperature", "softmax(flat_logits * temperature",
           (f"{DIST}::test_logistic_mixture_draws_follow_the_tempered_mixture",)),
    Mutant("mixture-scale-temperature-divides", "core/heads/logistic_mixture.py",
           "(log_s.exp() * temperature)", "(log_s.exp() / temperature)",
           (f"{DIST}::test_logistic_mixture_draws_follow_the_tempered_mixture",)),
    Mutant("complete-keeps-the-lower-half", "api.py",
           "known[:, : h // 2] = True", "known[:, h // 2:] = True",
           (f"{COMPLETE}::test_api_complete_keeps_the_upper_half_and_samples_the_lower",)),
    Mutant("completion-keeps-mirrored-positions", "core/sampling.py",
           "known_flat = known.to(device).reshape(n, -1).bool()",
           "known_flat = known.to(device).reshape(n, -1).bool().flip(1)",
           (COMPLETE,)),
    Mutant("cached-completion-conditions-on-draws-not-givens", "core/sampling.py",
           "    draw = torch.where(keep, xf[:, :, pos], draw)\n            xf[:, :, pos] = draw\n",
           "    xf[:, :, pos] = torch.where(keep, xf[:, :, pos], draw)\n            else:\n"
           "                xf[:, :, pos] = draw\n",
           (f"{COMPLETE}::test_completions_are_samples_of_the_exact_conditional",)),
    Mutant("made-completion-picks-masks-uniformly", "modalities/image/models/made.py",
           "torch.softmax(torch.stack(log_w, 1)", "torch.softmax(0 * torch.stack(log_w, 1)",
           (f"{COMPLETE}::test_made_ensemble_completions_weigh_masks_by_the_given_pixels",)),
    Mutant("text-bits-per-char-multiplies", "api.py",
           "/ math.log(2.0) / chars_per_token", "/ math.log(2.0) * chars_per_token",
           (TEXT_EVAL,)),
    Mutant("text-nats-per-token-in-bits", "api.py",
           'result["nats_per_token"] = res["nll"] / model.num_dims', 'result["nats_per_token"] = res["bpd"]',
           # nats/token reported in bits
           (TEXT_EVAL,)),
    Mutant("forecast-seeds-by-chunk-position", "modalities/series/models/base.py",
           "manual_seed(series_seed(seed, i))", "manual_seed(series_seed(seed, i % per))",
           (PATHS,)),
    Mutant("forecast-series-share-a-generator", "modalities/series/models/base.py",
           "scale.split(self.n), self.generators,", "scale.split(self.n), [self.generators[0]] * len(self.generators),",
           (PATHS,)),
    Mutant("forecast-window-scale-sees-the-horizon", "modalities/series/features.py",
           "context_scale(y[:, : spec.history], spec.context,", "context_scale(y, spec.context + spec.horizon,",
           (f"{SCALE}::test_training_window_scale_and_parameters_ignore_the_window_horizon",)),
    Mutant("truncate-keeps-targets-with-future-covariates", "modalities/series/table.py",
           "v[:k] for v, k in zip(self.values, cuts, strict=True)],\n                       times=[t[:k] for",
           "v[:k + covariate_extra] for v, k in zip(self.values, cuts, strict=True)],\n"
           "                       times=[t[:k + covariate_extra] for",
           (f"{SCALE}::test_forecast_scale_and_paths_ignore_values_after_the_origin",)),
    # bounds that were too loose: each plant below passed the assertion it replaced, unless noted
    # (the old TV bound, 0.04 at 6,000 draws, caught this one too)
    Mutant("made-ensemble-skips-a-mask", "modalities/image/models/made.py",
           "torch.randint(self.num_masks, (n,)", "torch.randint(self.num_masks - 1, (n,)",
           ("tests/test_made.py::test_sampling_is_reproducible_and_follows_the_ensemble",)),
    Mutant("histogram-smoothing-halved", "modalities/image/models/histogram.py",
           "alpha: float = 1.0) -> None:", "alpha: float = 0.5) -> None:",
           ("tests/test_learning.py::test_histogram_nll_is_the_laplace_smoothed_count",)),
    Mutant("backtest-coverage-from-the-wrong-quantile", "modalities/series/backtest.py",
           "M.coverage(y, qf[:, j], qf[:, k])", "M.coverage(y, qf[:, j], qf[:, k - 1])",
           ("tests/test_ts_baselines.py::test_backtest_result_metrics",)),
    Mutant("forecaster-ignores-its-seed", "modalities/series/neural.py",
           "torch.manual_seed(self.train_cfg.seed)", "torch.manual_seed(0)",
           (f"{TS_LEARNING}::test_stability_check_reports_the_spread",)),
    Mutant("forecaster-ignores-its-seed-cli", "modalities/series/neural.py",
           "torch.manual_seed(self.train_cfg.seed)", "torch.manual_seed(0)",
           ("tests/test_ts_cli.py::test_backtest_with_baselines_and_seeds",)),
    Mutant("student-t-spread-doubled", "core/heads/continuous.py",
           'temperature * p["scale"] * _normal(df', '2 * temperature * p["scale"] * _normal(df',
           (f"{TS_LEARNING}::test_beats_naive_on_airpassengers[deepar]",)),
    # (the old lower bound, 0.5, caught this one too)
    Mutant("student-t-spread-quartered", "core/heads/continuous.py",
           'temperature * p["scale"] * _normal(df', '0.25 * temperature * p["scale"] * _normal(df',
           (f"{TS_LEARNING}::test_beats_naive_on_airpassengers[deepar]",)),
    Mutant("conv-cache-neighbourhood-one-column-left", "core/nn/conv_cache.py",
           "i : i + self.kh, j : j + self.kw]", "i : i + self.kh, max(j - 1, 0) : max(j - 1, 0) + self.kw]",
           ("tests/test_conv_cache.py",)),
    Mutant("gated-cache-first-layer-sees-its-pixel", "modalities/image/models/gated_pixelcnn.py",
           'cache["h_in"][0].at(i, j - 1) if j > 0', 'cache["h_in"][0].at(i, j) if j > 0',
           ("tests/test_conv_cache.py",)),
    Mutant("pixelcnn-pp-cache-reads-up-left", "modalities/image/models/pixelcnn_pp.py",
           'cache["ul_up"].at(i - 1, j)', 'cache["ul_up"].at(i - 1, max(j - 1, 0))',
           ("tests/test_conv_cache.py",)),
    Mutant("made-cache-finalises-a-step-late", "modalities/image/models/made.py",
           "self._finalise(t, cache)", "self._finalise(t - 1, cache)",
           ("tests/test_conv_cache.py",)),
    Mutant("conditional-cache-ignores-the-image", "modalities/image/models/conditional_pixelcnn.py",
           '"biases": self._biases(cond,', '"biases": self._biases(None,',
           ("tests/test_conv_cache.py::test_conditional_pixelcnn_steps_read_the_conditioning_image",)),
    Mutant("diagonal-cache-mirrored-pass-left-to-right", "modalities/image/models/diagonal_bilstm.py",
           "for j in range(width - 1, -1, -1):", "for j in range(width):",
           ("tests/test_conv_cache.py",)),
    Mutant("pixelsnail-cache-query-misses-its-own-key", "modalities/image/models/pixelsnail.py",
           'cache["kv"]["pos"] = t', 'cache["kv"]["pos"] = max(t - 1, 0)',
           ("tests/test_conv_cache.py",)),
    Mutant("batched-generations-share-one-seed", "modalities/text/generation/batch.py",
           "manual_seed(cfg.seed)", "manual_seed(0)",
           ("tests/test_continuous_batching.py::test_batched_generations_match_each_alone_with_joins_mid_decoding",)),
    Mutant("batched-rows-ignore-their-positions", "core/nn/attention.py",
           "<= pos[:, None]).view(h.shape[0], 1, 1, span)", "<= span).view(1, 1, 1, span)",
           ("tests/test_continuous_batching.py::test_batched_generations_match_each_alone_with_joins_mid_decoding",)),
    Mutant("sequence-vae-decoder-ignores-z", "core/latent/sequence_vae.py",
           "plan = self.conduct(z, u)  # (N, U, C)", "z = torch.zeros_like(z)\n        plan = self.conduct(z, u)",
           ("tests/test_sequence_vae.py::test_decoder_uses_z_to_reconstruct_its_own_sequence",)),
    Mutant("sequence-vae-word-dropout-in-the-bound", "core/latent/sequence_vae.py",
           "if regularise and self.word_dropout > 0:", "if self.word_dropout > 0:",
           ("tests/test_sequence_vae.py::test_word_dropout_hides_decoder_inputs_only_in_the_objective",)),
    Mutant("sequence-vae-free-bits-on-the-total", "core/latent/sequence_vae.py",
           "kl.mean(0).clamp(min=self.free_bits).sum()", "kl.mean(0).sum().clamp(min=self.free_bits)",
           ("tests/test_sequence_vae.py::test_kl_annealing_and_free_bits",)),
    Mutant("series-vae-scores-missing-steps", "modalities/series/models/sequence_vae.py",
           "return torch.where(known, lp, 0.0).sum(-1)", "return lp.sum(-1)",
           ("tests/test_series_vae.py::test_missing_steps_are_not_scored_and_windows_pad_to_segments",)),
    Mutant("series-vae-bound-in-scaled-units", "modalities/series/models/sequence_vae.py",
           "return self.iwae(scaled, k, generator) - self.log_scale(scaled, cond)",
           "return self.iwae(scaled, k, generator)",
           ("tests/test_series_vae.py::test_trains_on_real_series_windows_and_its_bounds_are_ordered",)),
    Mutant("folksongs-corpus-paths-positional", "modalities/music/data/sources.py",
           'corpus.getPaths(fileExtensions=("abc",))', 'corpus.getPaths("abc")',
           ("tests/test_folksongs.py",)),
]
