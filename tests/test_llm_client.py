"""Both upstream clients (through litellm, and direct over HTTP) against a real OpenAI-compatible server on
loopback: every behaviour test runs on each, so the direct transport cannot drift from litellm's."""

import base64
import logging
from typing import Any

import pytest

from estimators.base import total_cost
from gate.backends.factory import create_llm, run_then_close
from gate.backends.litellm_client import LiteLLMClient, classify_error, parse_response
from gate.backends.openai_compat import OpenAICompatibleClient
from gate.config import Settings
from gate.errors import ConfigError, UnknownModelError, UpstreamError, UpstreamTooLargeError
from tests.stub_upstream import StubState, stub_upstream

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(params=[LiteLLMClient, OpenAICompatibleClient], ids=["litellm", "direct"])
def kind(request):
    return request.param


@pytest.fixture
async def client(kind):
    made = []

    def make(base_url: str, **kwargs) -> LiteLLMClient:
        made.append(kind("openai/stub-model", api_base=base_url, api_key="sk-test", backoff_s=0.01, **kwargs))
        return made[-1]

    yield make
    for llm in made:
        if hasattr(llm, "aclose"):
            await llm.aclose()  # the direct transport's connection pool


async def test_chat_with_logprobs_and_native_n(client):
    state = StubState(text="Paris France")
    with stub_upstream(state) as url:
        gens = await client(url).generate(QUESTION, n=3, temperature=0.7, logprobs=2, max_tokens=5, seed=1)
    assert [g.text for g in gens] == ["Paris France"] * 3
    assert gens[0].logprobs == [-0.25, -0.25]
    assert gens[0].tokens[0].top[0] == ("Paris", -0.25) and len(gens[0].tokens[0].top) == 2
    assert len(state.requests) == 1 and state.requests[0]["n"] == 3  # one call, native n
    assert state.requests[0]["temperature"] == 0.7 and state.requests[0]["max_tokens"] == 5
    cost = total_cost(gens)
    assert (cost.calls, cost.prompt_tokens, cost.completion_tokens) == (1, 7, 6)
    assert cost.seconds > 0


async def test_separate_calls_when_native_n_is_off(client):
    state = StubState()
    with stub_upstream(state) as url:
        gens = await client(url, native_n="never").generate(QUESTION, n=3, seed=10)
    assert len(gens) == 3 and len(state.requests) == 3
    assert sorted(r["seed"] for r in state.requests) == [10, 11, 12]
    assert total_cost(gens).calls == 3


async def test_text_completion_logprobs_are_normalised(client):
    state = StubState(text="Jane Austen")
    with stub_upstream(state) as url:
        gens = await client(url).generate("Q: Who wrote Emma?\nA:", logprobs=1, stop=["\n"])
    assert gens[0].text == "Jane Austen"
    assert gens[0].logprobs == [-0.5, -0.5] and gens[0].tokens[0].top == (("Jane", -0.5),)
    assert state.requests[0]["stop"] == ["\n"] and state.requests[0]["prompt"].endswith("A:")


async def test_no_logprobs_when_not_asked(client):
    with stub_upstream(StubState()) as url:
        gens = await client(url).generate(QUESTION)
    assert gens[0].tokens is None


async def test_retries_on_5xx_then_succeeds(client):
    state = StubState(fail_first=2, fail_status=503)
    with stub_upstream(state) as url:
        gens = await client(url, max_retries=2).generate(QUESTION)
    assert gens[0].text == "Paris" and len(state.requests) == 3


async def test_gives_up_after_bounded_retries_with_gateway_status(client):
    state = StubState(fail_first=10, fail_status=500)
    with stub_upstream(state) as url, pytest.raises(UpstreamError) as info:
        await client(url, max_retries=1).generate(QUESTION)
    assert info.value.status == 502 and len(state.requests) == 2


async def test_client_errors_are_not_retried(client):
    state = StubState(fail_first=10, fail_status=401)
    with stub_upstream(state) as url, pytest.raises(UpstreamError) as info:
        await client(url, max_retries=3).generate(QUESTION)
    assert info.value.status == 401 and len(state.requests) == 1


async def test_unreachable_endpoint_is_a_502_after_retries(client):
    llm = client("http://127.0.0.1:9/v1", max_retries=1, timeout_s=2)
    with pytest.raises(UpstreamError) as info:
        await llm.generate(QUESTION)
    assert info.value.status in (502, 504) and info.value.retryable


async def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(UnknownModelError, match="unknown model 'no-such-provider-xyz'"):
        await LiteLLMClient("no-such-provider-xyz").generate(QUESTION)


async def test_an_answer_over_max_response_bytes_fails_on_either_transport(client):
    """Issue 17: the litellm transport honours max_upstream_bytes too (it measures what litellm parsed; the
    direct one stops reading at the limit)."""
    with stub_upstream(StubState(text="a" * 200_000)) as url, pytest.raises(UpstreamTooLargeError, match="100000"):
        await client(url, max_response_bytes=100_000, max_retries=2).generate(QUESTION)
    with stub_upstream(StubState(text="a" * 20_000)) as url:
        [generation] = await client(url, max_response_bytes=100_000).generate(QUESTION)
    assert len(generation.text) == 20_000


def test_api_key_never_in_repr(kind):
    assert "sk-test" not in repr(kind("openai/x", api_base="http://127.0.0.1:9/v1", api_key="sk-test"))


async def test_the_direct_client_sends_the_bare_model_name_and_the_key_as_bearer():
    state = StubState()
    with stub_upstream(state) as url:
        llm = OpenAICompatibleClient("openai/stub-model", api_base=url, api_key="sk-test")
        await llm.generate(QUESTION)
        await llm.aclose()
    assert state.requests[0]["model"] == "stub-model" and state.requests[0]["messages"] == QUESTION


def test_a_command_run_closes_the_direct_clients_connections_on_its_own_loop():
    """``gate ask`` / ``score`` / ``calibrate`` run once and exit: no "Unclosed client session" at exit."""
    with stub_upstream(StubState()) as url:
        llm = OpenAICompatibleClient("openai/stub-model", api_base=url, api_key="sk-test")
        generations = run_then_close(llm, llm.generate(QUESTION))
    assert [g.text for g in generations] == ["Paris"] and llm._http is None


@pytest.mark.parametrize("bypass", [False, True], ids=["through-proxy", "no-proxy"])
async def test_the_direct_client_uses_the_environment_proxy_unless_no_proxy_says_otherwise(monkeypatch, bypass):
    """HTTP_PROXY / NO_PROXY are read once, when the client is made, and honoured like httpx honours them."""
    state = StubState()
    with stub_upstream(state) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url.removesuffix("/v1"))
        upstream = "http://upstream.invalid/v1"  # .invalid never resolves: only the proxy can answer
        if bypass:
            monkeypatch.setenv("NO_PROXY", "upstream.invalid")
        llm = OpenAICompatibleClient("openai/stub-model", api_base=upstream, api_key="sk-test", max_retries=0)
        try:
            if bypass:
                with pytest.raises(UpstreamError, match="cannot reach"):
                    await llm.generate(QUESTION)
            else:
                assert [g.text for g in await llm.generate(QUESTION)] == ["Paris"]
        finally:
            await llm.aclose()
    assert state.paths == ([] if bypass else ["http://upstream.invalid/v1/chat/completions"])


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"model": "openai/m", "api_base": "http://127.0.0.1:9/v1"}, OpenAICompatibleClient),
        ({"model": "openai/m", "api_base": "http://127.0.0.1:9/v1", "transport": "litellm"}, LiteLLMClient),
        ({"model": "openai/gpt-4o-mini"}, LiteLLMClient),  # no api_base: the provider itself, through litellm
        ({"model": "anthropic/claude-x", "api_base": "http://127.0.0.1:9"}, LiteLLMClient),
    ],
)
def test_transport_auto_goes_direct_only_for_an_openai_compatible_api_base(settings, expected):
    assert type(create_llm(Settings(**settings))) is expected


def test_an_unroutable_name_fails_when_the_client_is_made_unless_the_direct_transport_serves_it():
    with pytest.raises(UnknownModelError, match="unknown model 'no-such-provider-xyz'"):
        create_llm(Settings(model="no-such-provider-xyz"))
    direct = Settings(model="my-model", api_base="http://127.0.0.1:9/v1", transport="direct")
    assert isinstance(create_llm(direct), OpenAICompatibleClient)  # litellm never sees that name


@pytest.mark.parametrize("transport", ["direct", "litellm"])
def test_a_key_and_user_info_in_api_base_are_refused_when_the_client_is_made(transport):
    """Both would be the Authorization header: aiohttp refused every request with a 502, found by the upstream
    fuzz test. Now one configuration error, which names neither secret."""
    settings = Settings(
        model="openai/m", api_base="http://gate:pw-SECRET-1@127.0.0.1:9/v1", api_key="sk-SECRET-2", transport=transport
    )
    with pytest.raises(ConfigError, match="one Authorization header") as raised:
        create_llm(settings)
    assert "pw-SECRET" not in str(raised.value) and "sk-SECRET" not in str(raised.value)


async def test_without_a_key_the_direct_client_sends_api_base_user_info_as_basic_auth():
    state = StubState()
    with stub_upstream(state) as url:
        llm = create_llm(Settings(model="openai/stub", api_base=url.replace("http://", "http://gate:pw-1@")))
        assert [g.text for g in await llm.generate(QUESTION)] == ["Paris"]
        await llm.aclose()  # type: ignore[attr-defined]
    assert state.headers[0]["Authorization"] == "Basic " + base64.b64encode(b"gate:pw-1").decode()


def test_transport_direct_needs_an_api_base():
    with pytest.raises(ValueError, match="needs api_base"):
        create_llm(Settings(model="openai/m", transport="direct"))


def test_response_without_choices_is_an_upstream_error():
    with pytest.raises(UpstreamError, match="no choices"):
        parse_response({"choices": []}, chat=True)


def test_classify_timeout_and_status():
    class Timeout(Exception):  # noqa: N818 -- named like litellm's class
        pass

    class RateLimitError(Exception):
        status_code = 429

    assert classify_error(Timeout("slow"), "m").status == 504
    limited = classify_error(RateLimitError("busy"), "m")
    assert limited.status == 429 and limited.retryable
    assert classify_error(TimeoutError(), "m").status == 504  # no message at all (httpx's timeouts)


def test_a_key_the_provider_echoes_is_masked_where_the_error_enters_the_gate():
    class NotFoundError(Exception):
        status_code = 404

    echoed = NotFoundError("Incorrect API key provided: Bearer sk-configured-123; also sk-fromtheenv-456789")
    error = classify_error(echoed, "openai/x", secrets=("sk-configured-123",))
    assert isinstance(error, UnknownModelError)
    assert "sk-configured" not in str(error) and "sk-fromtheenv" not in str(error) and "***" in str(error)


def test_basic_credentials_a_provider_echoes_are_masked_where_the_error_enters_the_gate():
    class AuthenticationError(Exception):
        status_code = 401

    echoed = AuthenticationError("no entry for Basic dXNlcjpodW50ZXIy; Basic authentication required")
    error = classify_error(echoed, "openai/x")
    assert "dXNlcjpodW50ZXIy" not in str(error) and "Basic authentication required" in str(error)


async def test_retries_log_neither_the_key_nor_the_password_of_api_base(caplog):
    """Found by the canary test: the retry's log line masked the key but not the password of api_base."""

    class InternalServerError(Exception):
        status_code = 500

    client = LiteLLMClient("openai/x", api_base="http://gate:pw-secret-9@127.0.0.1:9/v1", max_retries=1, backoff_s=0)

    basic = base64.b64encode(b"gate:pw-secret-9").decode()

    async def failing_request(*args: Any) -> Any:
        raise InternalServerError(f"no entry for gate:pw-secret-9 (Basic {basic})")

    client._request = failing_request  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamError) as raised:
        await client.generate("q")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "retry 1" in logged and "pw-secret" not in logged + str(raised.value)
    assert basic not in logged + str(raised.value)


async def test_retries_log_no_key_at_any_level(caplog):
    class InternalServerError(Exception):
        status_code = 500

    client = LiteLLMClient("openai/x", api_key="sk-configured-123", max_retries=2, backoff_s=0.001)

    async def failing_request(*args: Any) -> Any:
        raise InternalServerError("upstream broke for key sk-configured-123 (Bearer sk-configured-123)")

    client._request = failing_request  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UpstreamError) as raised:
        await client.generate("q")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "retry 2" in logged  # the retries were logged, without the key
    assert "sk-configured" not in logged and "sk-configured" not in str(raised.value)
