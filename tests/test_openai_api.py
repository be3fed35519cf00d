"""The OpenAI-compatible endpoints, spoken to by the real ``openai`` client and lm-evaluation-harness against a real
server process: completions are the native generation, echoed log-probabilities the native scores."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import torch
from serve_helpers import make_text_run, running_server

from chainrule import api
from chainrule.runs import open_run

MAX_NEW_TOKENS = 24
MAX_BODY_KB = 64


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """A served tiny text run: (base URL, model name, run directory)."""
    root = tmp_path_factory.mktemp("openai")
    run = make_text_run(root / "chars")
    with running_server([run], root / "server.log", "--max-new-tokens", str(MAX_NEW_TOKENS), "--max-body-kb",
                        str(MAX_BODY_KB)) as base:
        yield base, "chars", run


@pytest.fixture(scope="module")
def client(server: tuple[str, str, Path]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="unused", max_retries=0, timeout=60)


def native_generate(base: str, **body: object) -> list[str]:
    r = httpx.post(f"{base}/v1/generate", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["texts"]


def test_completions_are_the_native_generation_and_reproducible(server, client) -> None:
    base, name, _ = server
    first = client.completions.create(model=name, prompt="abc", max_tokens=12, n=3, seed=7, temperature=0.9)
    again = client.completions.create(model=name, prompt="abc", max_tokens=12, n=3, seed=7, temperature=0.9)
    texts = [c.text for c in sorted(first.choices, key=lambda c: c.index)]
    assert [c.index for c in first.choices] == [0, 1, 2] and len(set(texts)) > 1
    assert texts == [c.text for c in sorted(again.choices, key=lambda c: c.index)]
    assert texts == native_generate(base, prompt="abc", max_new_tokens=12, num_samples=3, seed=7, temperature=0.9)
    assert first.object == "text_completion" and first.model == name
    assert first.usage.prompt_tokens == 3 and first.usage.completion_tokens == sum(len(t) for t in texts)
    assert {c.finish_reason for c in first.choices} == {"length"}


def test_a_list_of_prompts_gives_n_choices_each_in_order(server, client) -> None:
    base, name, _ = server
    out = client.completions.create(model=name, prompt=["ab", "h"], max_tokens=6, n=2, seed=3)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    assert [c.text for c in out.choices[:2]] == native_generate(base, prompt="ab", max_new_tokens=6, num_samples=2,
                                                                seed=3)
    assert [c.text for c in out.choices[2:]] == native_generate(base, prompt="h", max_new_tokens=6, num_samples=2,
                                                                seed=4)


def test_stop_cuts_before_the_stop_string_and_says_so(server, client) -> None:
    base, name, _ = server
    free = native_generate(base, prompt="ab", max_new_tokens=20, num_samples=8, seed=11)
    out = client.completions.create(model=name, prompt="ab", max_tokens=20, n=8, seed=11, stop=["e", "fg"])
    stopped = 0
    for c, whole in zip(sorted(out.choices, key=lambda c: c.index), free, strict=True):
        cuts = [i for i in (whole.find("e"), whole.find("fg")) if i >= 0]
        assert c.text == whole[:min(cuts)] if cuts else c.text == whole
        assert c.finish_reason == ("stop" if cuts else "length")
        stopped += bool(cuts)
    assert 0 < stopped  # the stop strings did fire


def test_streaming_sends_the_same_text_then_done(server, client) -> None:
    _, name, _ = server
    whole = client.completions.create(model=name, prompt="gh", max_tokens=15, n=2, seed=5, stop="a")
    pieces: dict[int, str] = {0: "", 1: ""}
    reasons: dict[int, str] = {}
    for chunk in client.completions.create(model=name, prompt="gh", max_tokens=15, n=2, seed=5, stop="a",
                                           stream=True):
        for c in chunk.choices:
            pieces[c.index] += c.text
            if c.finish_reason:
                reasons[c.index] = c.finish_reason
    assert pieces == {c.index: c.text for c in whole.choices}
    assert reasons == {c.index: c.finish_reason for c in whole.choices}
    raw = httpx.post(f"{server[0]}/v1/completions", json={"model": name, "prompt": "gh", "max_tokens": 3,
                                                          "stream": True}, timeout=60).text
    assert raw.rstrip().endswith("data: [DONE]")


def test_echo_logprobs_are_the_native_log_prob(server, client) -> None:
    base, name, _ = server
    text = "bad cafe\nhead"
    native = httpx.post(f"{base}/v1/log_prob", json={"model": name, "texts": [text]}, timeout=60).json()["results"][0]
    echo = client.completions.create(model=name, prompt=text, max_tokens=0, echo=True, logprobs=1)
    lp = echo.choices[0].logprobs
    assert echo.choices[0].text == text and lp.tokens == native["tokens"]
    assert lp.token_logprobs == [-s for s in native["surprisal"]]  # the same numbers, not merely close
    assert lp.text_offset == list(range(len(text)))
    # lm-eval's request: one greedy token after the echo; its top alternative is the most likely token
    step = client.completions.create(model=name, prompt=text, max_tokens=1, echo=True, logprobs=3, temperature=0)
    lp = step.choices[0].logprobs
    assert lp.token_logprobs[:len(text)] == [-s for s in native["surprisal"]]
    assert all(len(top) <= 3 and max(top.values()) >= tok - 1e-12 for top, tok in
               zip(lp.top_logprobs, lp.token_logprobs, strict=True))
    assert lp.token_logprobs[-1] == max(lp.top_logprobs[-1].values())  # greedy: the generated token is the top one
    assert sum(math.exp(v) for v in lp.top_logprobs[0].values()) <= 1 + 1e-9


def test_completion_logprobs_score_the_completion_after_its_prompt(server, client) -> None:
    base, name, _ = server
    out = client.completions.create(model=name, prompt="abc", max_tokens=6, seed=2, logprobs=2)
    choice = out.choices[0]
    native = httpx.post(f"{base}/v1/log_prob", json={"model": name, "texts": ["abc" + choice.text]},
                        timeout=60).json()["results"][0]
    assert choice.logprobs.tokens == native["tokens"][3:] and "".join(choice.logprobs.tokens) == choice.text
    assert choice.logprobs.token_logprobs == [-s for s in native["surprisal"][3:]]
    assert choice.logprobs.text_offset == list(range(3, 3 + len(choice.text)))


def test_models_list_in_both_shapes(server, client) -> None:
    base, name, _ = server
    assert [m.id for m in client.models.list()] == [name]
    assert client.models.retrieve(name).owned_by == "chainrule"
    native = httpx.get(f"{base}/v1/models", timeout=30).json()
    assert native["models"][0]["name"] == name and "limits" in native


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "nope", "prompt": "a"}, 404, None),
    ({"prompt": "a", "temperature": -1}, 422, "temperature"),
    ({"prompt": "a", "max_tokens": MAX_NEW_TOKENS + 1}, 422, None),  # over this server's limit, as /v1/generate
    ({"prompt": "a", "frequency_penalty": 0.5}, 422, "frequency_penalty"),
    ({"prompt": "a", "stream": True, "logprobs": 1}, 422, "logprobs"),
    ({"prompt": [[1, 99]]}, 400, None),  # a token id outside the vocabulary
    ({"prompt": "a" * (MAX_BODY_KB * 1024 + 1)}, 413, None),  # refused before the endpoint runs
])
def test_errors_have_openais_shape_and_the_native_status(server, body, status, param) -> None:
    r = httpx.post(f"{server[0]}/v1/completions", json=body, timeout=30)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"}
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"] and error["param"] == param
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


def test_the_openai_client_raises_its_own_errors(server, client) -> None:
    with pytest.raises(openai.NotFoundError, match="unknown model"):
        client.completions.create(model="nope", prompt="a")
    with pytest.raises(openai.UnprocessableEntityError, match="limit"):
        client.completions.create(model=server[1], prompt="a", max_tokens=MAX_NEW_TOKENS + 1)


def chainrule_log_likelihood(run: Path, context: str, continuation: str) -> float:
    """chainrule's own log-likelihood (nats) of ``continuation`` after ``context``, straight from the model."""
    model, tokenizer = api.load_text_run(open_run(run), "cpu")
    ctx, cont = tokenizer.encode(context), tokenizer.encode(continuation)
    x = torch.tensor(ctx + cont).view(1, 1, -1)
    with torch.no_grad():
        lp = model.eval().log_prob_positions(x).double().flatten()
    return float(lp[len(ctx):].sum())


def test_lm_eval_loglikelihood_equals_chainrules(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lm-evaluation-harness's ``local-completions`` model on a local task (nothing downloaded)."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    base, name, run = server
    docs = [{"context": "abc", "continuation": " bad"}, {"context": "head", "continuation": "\ncafe"},
            {"context": "g", "continuation": "hhh"}]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "task.yaml").write_text(f"""task: chainrule_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {tmp_path / "docs.jsonl"}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{continuation}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
""")
    out = simple_evaluate(model="local-completions", tasks=["chainrule_local"], log_samples=True, bootstrap_iters=0,
                          task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
                          model_args={"base_url": f"{base}/v1/completions", "model": name, "max_length": 64,
                                      "tokenizer_backend": "remote", "num_concurrent": 1, "max_retries": 1})
    got = {s["doc"]["context"]: s["filtered_resps"][0][0] for s in out["samples"]["chainrule_local"]}
    want = {d["context"]: chainrule_log_likelihood(run, d["context"], d["continuation"]) for d in docs}
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-9)
    ppl = out["results"]["chainrule_local"]["perplexity,none"]
    assert ppl == pytest.approx(math.exp(-sum(want.values()) / len(want)), rel=1e-6)
