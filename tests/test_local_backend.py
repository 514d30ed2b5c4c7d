"""The embedded model for real: log-probs, samples, seeds, concurrency, and litellm routing."""

import asyncio
import math

import pytest

from estimators.base import LLM, SupportsContinuationLogprobs, SupportsDisagreementStop, total_cost
from estimators.equivalence import ExactMatch
from gate.backends.embedded.local import LocalLLM
from gate.backends.embedded.prompt_format import render_chat

pytestmark = pytest.mark.integration

HAMLET = [{"role": "user", "content": "Who wrote Hamlet?"}]


async def test_protocols_and_greedy_answer_is_reproducible(local_llm: LocalLLM):
    assert isinstance(local_llm, LLM) and isinstance(local_llm, SupportsContinuationLogprobs)
    first = await local_llm.generate(HAMLET, max_tokens=12)
    second = await local_llm.generate(HAMLET, max_tokens=12)
    assert first[0].text == second[0].text != ""
    assert "\n" not in first[0].text and first[0].finish_reason == "stop"


async def test_logprobs_shape_and_top_alternatives(local_llm: LocalLLM):
    [gen] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=5)
    assert gen.tokens and len(gen.tokens) == gen.usage.completion_tokens
    assert "".join(t.token for t in gen.tokens).strip() == gen.text
    for token in gen.tokens:
        assert token.logprob <= 0 and len(token.top) == 5
        values = [value for _, value in token.top]
        assert values == sorted(values, reverse=True)
        assert token.top[0][1] == pytest.approx(token.logprob, abs=1e-6)  # greedy takes the most likely token


async def test_logprobs_do_not_depend_on_the_previous_request(local_llm: LocalLLM):
    [first] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=1)
    await local_llm.generate([{"role": "user", "content": "Who wrote Macbeth?"}], max_tokens=4)
    [again] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=1)
    assert again.logprobs == first.logprobs


async def test_generation_logprobs_match_forced_continuation(local_llm: LocalLLM):
    [gen] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=1)
    forced = await local_llm.continuation_logprobs(render_chat(HAMLET), " " + gen.text)
    assert forced == pytest.approx(gen.logprobs, abs=1e-6)


async def test_forced_continuation_prefers_the_right_city(local_llm: LocalLLM):
    prompt = "The capital city of France is"
    paris = await local_llm.continuation_logprobs(prompt, " Paris")
    ulaanbaatar = await local_llm.continuation_logprobs(prompt, " Ulaanbaatar")
    assert sum(paris) > sum(ulaanbaatar) and all(v <= 0 for v in paris + ulaanbaatar)


async def test_seeded_samples_are_reproducible_and_cost_one_call(local_llm: LocalLLM):
    question = [{"role": "user", "content": "Name a famous painter."}]
    a = await local_llm.generate(question, n=4, temperature=1.0, seed=7, max_tokens=10)
    b = await local_llm.generate(question, n=4, temperature=1.0, seed=7, max_tokens=10)
    assert [g.text for g in a] == [g.text for g in b]
    cost = total_cost(a)
    assert cost.calls == 1 and cost.prompt_tokens > 0 and a[1].usage.prompt_tokens == 0


async def test_concurrent_callers_get_their_own_answers(local_llm: LocalLLM):
    questions = ["Who wrote Hamlet?", "What is the capital of Italy?", "Who painted the Mona Lisa?"]
    sequential = [(await local_llm.generate([{"role": "user", "content": q}]))[0].text for q in questions]
    together = await asyncio.gather(*(local_llm.generate([{"role": "user", "content": q}]) for q in questions))
    assert [g[0].text for g in together] == sequential


async def test_raw_prompt_is_completed_as_is(local_llm: LocalLLM):
    [gen] = await local_llm.generate("1, 2, 3, 4,", max_tokens=4, stop=["\n"])
    assert gen.text.strip().startswith("5")


async def test_a_greedy_answer_ends_where_it_can_no_longer_agree(local_llm: LocalLLM):
    assert isinstance(local_llm, SupportsDisagreementStop)
    story = "Once upon a time, in a small village by the sea,"
    [whole] = await local_llm.generate(story, max_tokens=24)
    [cut] = await local_llm.generate_until_disagreeing(story, answer="a fisherman", max_tokens=24, logprobs=1)
    assert whole.text.startswith(cut.text) and cut.finish_reason == "length"
    before_its_last_token = "".join(token.token for token in cut.tokens[:-1])
    judge = ExactMatch()
    assert judge.could_agree("a fisherman", before_its_last_token) and not judge.could_agree("a fisherman", cut.text)


async def test_batched_samples_end_once_they_can_no_longer_agree(local_llm: LocalLLM):
    prompt = render_chat([{"role": "user", "content": "Name three famous painters."}])
    answer, judge = "Claude Monet", ExactMatch()
    samples = await local_llm.generate_until_disagreeing(
        prompt, answer=answer, n=5, temperature=1.0, seed=3, max_tokens=24, logprobs=1, stop=["\n"]
    )
    for sample in samples:
        pieces = [token.token for token in sample.tokens]
        assert "".join(pieces) == sample.text
        if sample.finish_reason == "length" and len(pieces) < 24:
            assert not judge.could_agree(answer, sample.text) and judge.could_agree(answer, "".join(pieces[:-1]))
    assert any(not judge.could_agree(answer, sample.text) for sample in samples)  # a list of three is settled
    assert all(len(sample.tokens) < 24 for sample in samples)


async def test_prompt_longer_than_context_is_a_clear_error():
    small = LocalLLM(n_ctx=256)
    with pytest.raises(ValueError, match="context holds 256"):
        await small.generate("word " * 400)


async def test_bad_arguments_are_rejected(local_llm: LocalLLM):
    with pytest.raises(ValueError, match="temperature"):
        await local_llm.generate(HAMLET, temperature=5.0)
    with pytest.raises(ValueError, match="n must be"):
        await local_llm.generate(HAMLET, n=0)


async def test_litellm_routes_local_model_name(local_llm: LocalLLM):
    from gate.backends.litellm_client import LiteLLMClient, import_litellm
    from gate.integrations.litellm_local import register_local_provider

    register_local_provider(local_llm)
    litellm = import_litellm()
    direct = await local_llm.generate(HAMLET, max_tokens=12, logprobs=2)
    response = await litellm.acompletion(
        model="local/gemma-3-270m", messages=HAMLET, max_tokens=12, logprobs=True, top_logprobs=2
    )
    assert response.choices[0].message.content == direct[0].text
    assert response.choices[0].logprobs.content[0].logprob == direct[0].logprobs[0]
    via_client = await LiteLLMClient("local/gemma-3-270m").generate(HAMLET, max_tokens=12, logprobs=2)
    assert via_client[0].text == direct[0].text
    assert via_client[0].logprobs == direct[0].logprobs
    assert math.isfinite(via_client[0].usage.seconds)


async def test_litellm_streams_the_local_model_token_by_token_with_logprobs(local_llm: LocalLLM):
    from gate.backends.litellm_client import import_litellm
    from gate.integrations.litellm_local import register_local_provider

    register_local_provider(local_llm)
    litellm = import_litellm()
    [direct] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=2)
    stream = await litellm.acompletion(
        model="local/gemma-3-270m", messages=HAMLET, max_tokens=12, stream=True, logprobs=True, top_logprobs=2
    )
    chunks = [chunk async for chunk in stream]
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    assert "".join(pieces) == direct.text and len([p for p in pieces if p]) > 1
    assert chunks[-1].choices[0].finish_reason == "stop"
    streamed = [
        entry.logprob
        for chunk in chunks
        if chunk.choices and chunk.choices[0].logprobs
        for entry in chunk.choices[0].logprobs.content
    ]
    assert streamed == pytest.approx(direct.logprobs)


PAINTER = render_chat([{"role": "user", "content": "Name a famous painter."}])


async def test_batched_samples_are_reproducible_and_match_their_text(local_llm: LocalLLM):
    kwargs = {"n": 5, "temperature": 1.0, "seed": 11, "max_tokens": 12, "logprobs": 2, "stop": ["\n"]}
    samples = await local_llm.generate(PAINTER, **kwargs)
    await local_llm.generate([{"role": "user", "content": "Who painted the Mona Lisa?"}], n=3, temperature=1.0)
    again = await local_llm.generate(PAINTER, **kwargs)
    assert len(samples) == 5 and len({g.text for g in samples}) > 1
    assert [(g.text, g.tokens, g.finish_reason) for g in again] == [
        (g.text, g.tokens, g.finish_reason) for g in samples
    ]
    for index, gen in enumerate(samples):
        assert "".join(t.token for t in gen.tokens) == gen.text and len(gen.tokens) == gen.usage.completion_tokens
        assert all(t.logprob <= 0 and t.top[0][1] >= t.logprob for t in gen.tokens)
        # Batched decoding rounds differently from a lone sequence (measured up to 0.2 on a sampled token).
        forced = await local_llm.continuation_logprobs(PAINTER, gen.text)
        assert forced == pytest.approx(gen.logprobs, abs=0.3)
        first = index == 0
        assert (gen.usage.calls, gen.usage.prompt_tokens > 0, gen.usage.seconds > 0) == (int(first), first, first)


async def test_greedy_is_unchanged_by_batched_samples_of_the_same_prompt(local_llm: LocalLLM):
    [before] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=5)
    forced_before = await local_llm.continuation_logprobs(render_chat(HAMLET), " Charles Dickens")
    await local_llm.generate(HAMLET, n=5, temperature=1.0, seed=3, max_tokens=16)
    [after] = await local_llm.generate(HAMLET, max_tokens=12, logprobs=5)
    assert (after.text, after.tokens) == (before.text, before.tokens)
    await local_llm.generate(HAMLET, n=7, temperature=1.5, seed=4, max_tokens=16)
    assert await local_llm.continuation_logprobs(render_chat(HAMLET), " Charles Dickens") == forced_before


async def test_batched_samples_finish_at_a_stop_string_or_the_length_limit(local_llm: LocalLLM):
    prompt = "Colours of the rainbow: red, orange,"
    samples = await local_llm.generate(prompt, n=8, temperature=1.0, seed=5, max_tokens=3, stop=[","], logprobs=0)
    assert {g.finish_reason for g in samples} == {"stop", "length"}
    for gen in samples:
        assert "," not in gen.text and "".join(t.token for t in gen.tokens) == gen.text
        if gen.finish_reason == "length":
            assert gen.usage.completion_tokens == 3
        else:
            assert gen.usage.completion_tokens <= 3
    one_token = await local_llm.generate(prompt, n=4, temperature=1.0, seed=5, max_tokens=1)
    assert [g.finish_reason for g in one_token] == ["length"] * 4
    assert [g.usage.completion_tokens for g in one_token] == [1] * 4


@pytest.fixture(scope="module")
def llama_model():
    """The model in this process (the engine's own tests): one thread, a small context."""
    from gate.backends.embedded.cpu import build_features, cpu_flags, load_llama, system_info, use_extra_buffers
    from gate.backends.embedded.local import model_file

    extra = use_extra_buffers("auto", cpu=cpu_flags(), build=build_features(system_info()))
    return load_llama(str(model_file()), n_ctx=512, n_threads=1, extra_buffers=extra)


def _sample(engine, prompt: str, seed: int = 2):
    return engine.generate(prompt, n=5, temperature=1.0, max_tokens=10, top_logprobs=1, stop=["\n"], seed=seed)


def test_batched_samples_leave_only_the_prompt_in_the_kv_cache(llama_model):
    import llama_cpp

    from gate.backends.embedded.engine import LlamaEngine

    engine = LlamaEngine(llama_model)
    samples = _sample(engine, PAINTER)
    assert sum(g.usage.completion_tokens for g in samples) > 5
    memory = llama_cpp.llama_get_memory(llama_model._ctx.ctx)
    n_prompt = engine.count_tokens(PAINTER)
    assert llama_cpp.llama_memory_seq_pos_max(memory, 0) == n_prompt - 1
    assert [llama_cpp.llama_memory_seq_pos_max(memory, seq) for seq in range(1, 8)] == [-1] * 7  # the spare too


def test_serial_samples_match_forced_continuation_exactly(llama_model):
    from gate.backends.embedded.engine import LlamaEngine

    engine = LlamaEngine(llama_model, sample_decoding="serial")
    for gen in _sample(engine, PAINTER):
        assert engine.continuation_logprobs(PAINTER, gen.text) == gen.logprobs


def _decode_failing_on_third_call(llama_cpp):
    real, calls = llama_cpp.llama_decode, []

    def decode(ctx, batch):
        calls.append(batch.n_tokens)
        return 1 if len(calls) == 3 else real(ctx, batch)  # llama.cpp's "no KV slot" after two steps

    return decode


@pytest.mark.parametrize("failure", ["no batch API", "decode fails midway"])
def test_batched_sampling_that_fails_warns_once_and_samples_serially(llama_model, monkeypatch, caplog, failure):
    import llama_cpp

    from gate.backends.embedded.engine import LlamaEngine

    serial_engine = LlamaEngine(llama_model, sample_decoding="serial")
    serial = _sample(serial_engine, PAINTER)
    [greedy] = serial_engine.generate(PAINTER, n=1, temperature=0.0, max_tokens=8, top_logprobs=3, stop=[], seed=None)
    engine = LlamaEngine(llama_model)
    if failure == "no batch API":
        monkeypatch.delattr(llama_cpp, "llama_batch_init")
    else:
        monkeypatch.setattr(llama_cpp, "llama_decode", _decode_failing_on_third_call(llama_cpp))
    with caplog.at_level("WARNING", logger="gate.backends.embedded.engine"):
        first = _sample(engine, PAINTER)
        second = _sample(engine, PAINTER)
    assert [r.getMessage() for r in caplog.records] == [
        "batched sampling failed; decoding samples one at a time from now on"
    ]
    assert [g.logprobs for g in first] == [g.logprobs for g in second] == [g.logprobs for g in serial]
    assert [g.text for g in first] == [g.text for g in serial]
    [after] = engine.generate(PAINTER, n=1, temperature=0.0, max_tokens=8, top_logprobs=3, stop=[], seed=None)
    assert (after.text, after.tokens) == (greedy.text, greedy.tokens)


def test_more_samples_than_sequences_and_too_little_room(llama_model, caplog):
    import llama_cpp

    from gate.backends.embedded.engine import LlamaEngine

    engine = LlamaEngine(llama_model)
    eleven = {"n": 11, "temperature": 1.0, "max_tokens": 6, "top_logprobs": 0, "stop": ["\n"], "seed": 9}
    many = engine.generate(PAINTER, **eleven)  # a group of the context's 8 sequences, then one of 3
    again = engine.generate(PAINTER, **eleven)
    assert len(many) == 11 and [(g.text, g.tokens) for g in many] == [(g.text, g.tokens) for g in again]
    assert [g.usage.calls for g in many] == [1] + [0] * 10
    memory = llama_cpp.llama_get_memory(llama_model._ctx.ctx)
    assert [llama_cpp.llama_memory_seq_pos_max(memory, seq) for seq in range(1, 8)] == [-1] * 7
    # 2 samples of up to 300 tokens do not fit next to the prompt in 512 cells: one after the other, no warning
    serial = LlamaEngine(llama_model, sample_decoding="serial")
    long = {"n": 2, "temperature": 1.0, "max_tokens": 300, "top_logprobs": 0, "stop": ["\n"], "seed": 1}
    with caplog.at_level("WARNING", logger="gate.backends.embedded.engine"):
        unbatched = engine.generate(PAINTER, **long)
    assert [g.tokens for g in unbatched] == [g.tokens for g in serial.generate(PAINTER, **long)]
    assert not caplog.records and engine._batching


def _recording_calls(llama_cpp, monkeypatch) -> list[tuple[int, list[int]]]:
    """Record every ``llama_decode`` call as (the position of its first row, the first sequence of each row)."""
    real, calls = llama_cpp.llama_decode, []

    def decode(ctx, batch):
        calls.append((batch.pos[0], [batch.seq_id[row][0] for row in range(batch.n_tokens)]))
        return real(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    return calls


def _steps(calls: list[tuple[int, list[int]]]) -> list[list[list[int]]]:
    """The calls grouped by step: a step's calls decode its rows at one position (a padded row sits last)."""
    steps: list[list[list[int]]] = []
    for index, (position, seqs) in enumerate(calls):
        if index and position == calls[index - 1][0]:
            steps[-1].append(seqs)
        else:
            steps.append([seqs])
    return steps


def test_samples_after_the_answer_reuse_its_prompt_and_equal_samples_of_a_fresh_prompt(llama_model, monkeypatch):
    import llama_cpp

    from gate.backends.embedded.engine import LlamaEngine

    fresh = _sample(LlamaEngine(llama_model), PAINTER)
    engine = LlamaEngine(llama_model)
    engine.generate(PAINTER, n=1, temperature=0.0, max_tokens=8, top_logprobs=1, stop=["\n"], seed=None)
    calls = _recording_calls(llama_cpp, monkeypatch)
    after_answer = _sample(engine, PAINTER)
    assert [(g.text, g.logprobs) for g in after_answer] == [(g.text, g.logprobs) for g in fresh]
    steps = max(g.usage.completion_tokens for g in after_answer)
    assert 0 < len(_steps(calls)) <= steps
    prompt_length = engine.count_tokens(PAINTER)
    assert all(position >= prompt_length for position, _ in calls)  # no prompt block was evaluated again


def test_samples_that_drew_the_same_tokens_share_one_row(llama_model, monkeypatch):
    import llama_cpp

    from gate.backends.embedded.engine import LlamaEngine

    engine = LlamaEngine(llama_model)
    [greedy] = engine.generate(PAINTER, n=1, temperature=0.0, max_tokens=6, top_logprobs=1, stop=[], seed=None)
    calls = _recording_calls(llama_cpp, monkeypatch)
    # At a temperature this low, top-p keeps only the likeliest token (unless two are within ~3e-4 in log-prob):
    # every sample draws the greedy tokens, on any CPU, so one row a step, not five.
    cold = engine.generate(PAINTER, n=5, temperature=1e-4, max_tokens=6, top_logprobs=1, stop=[], seed=3)
    rows = [len(seqs) for _, seqs in calls]
    assert {g.text for g in cold} == {greedy.text} and rows == [1] * (greedy.usage.completion_tokens - 1)
    for sample in cold:
        assert sample.logprobs == pytest.approx(greedy.logprobs, abs=1e-3)


def test_small_steps_are_decoded_a_row_at_a_time_and_odd_larger_ones_padded(llama_model, monkeypatch):
    import llama_cpp

    from gate.backends.embedded.engine import LlamaEngine

    engine = LlamaEngine(llama_model)
    assert engine.split_small_steps  # the default on a model running one thread
    engine.generate(PAINTER, n=1, temperature=0.0, max_tokens=1, top_logprobs=None, stop=[], seed=None)
    calls = _recording_calls(llama_cpp, monkeypatch)
    spare = 5  # five samples are sequences 0-4

    def hot_samples(seeds) -> list[list[list[int]]]:  # hot, so that steps of 5 distinct rows occur, and of 2 or 3
        calls.clear()  # as samples end at the end of their line
        for seed in seeds:
            engine.generate(PAINTER, n=5, temperature=3.0, max_tokens=10, top_logprobs=1, stop=["\n"], seed=seed)
        return _steps(calls)

    seen = set()
    for step in hot_samples(range(3)):
        real = [seq for call in step for seq in call if seq != spare]
        seen.add(len(real))
        if len(real) in (2, 3):
            assert [len(call) for call in step] == [1] * len(real)
        else:
            [call] = step
            assert len(call) - len(real) == (1 if len(real) in (5, 7) else 0)
    assert {2, 5} <= seen or {3, 5} <= seen
    memory = llama_cpp.llama_get_memory(llama_model._ctx.ctx)
    assert llama_cpp.llama_memory_seq_pos_max(memory, spare) == -1
    engine.split_small_steps = False  # one call a step, odd steps from 3 rows padded
    for [call] in hot_samples(range(3)):
        real = [seq for seq in call if seq != spare]
        assert len(call) - len(real) == (1 if len(real) >= 3 and len(real) % 2 else 0)
    engine.pad_odd_rows = False
    assert all(spare not in call for [call] in hot_samples([0]))
