"""One settings object: defaults (the embedded model), then a YAML file, then ``GATE_*`` variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from gate.errors import ConfigError

CONFIG_ENV_VAR = "GATE_CONFIG"
# Other names people use for the upstream's settings; the GATE_<FIELD> names win when both are set.
UPSTREAM_ENV_ALIASES = {
    "GATE_UPSTREAM_MODEL": "model",
    "GATE_UPSTREAM_API_BASE": "api_base",
    "GATE_UPSTREAM_API_KEY": "api_key",
}
DEFAULT_MODEL = "local/gemma-3-270m"
DEFAULT_EMBEDDER = "local/all-MiniLM-L6-v2"
GateMode = Literal["off", "observe", "enforce"]
ExtraBuffers = Literal["auto", "on", "off"]
"""May llama.cpp use extra buffer types (CPU repack, AMX)? ``gate.backends.embedded.cpu`` decides ``auto``."""
SECRET_FIELDS = frozenset({"api_key", "api_keys", "privileged_api_keys"})
"""Settings whose values are never shown (``display``, validation messages)."""
StateFailure = Literal["open", "closed"]
"""What the gate does when the shared state (Redis) cannot be reached; see ``Settings.state_failure``."""
STATE_SCHEMES = ("redis", "rediss", "unix")
SampleDecoding = Literal["batched", "serial"]
"""How the embedded model decodes n samples: together, or one after the other (``embedded.engine.LlamaEngine``)."""


# --- tenants (gate/tenants/, docs/tenants.md): API keys -> policies. Everything about them is kept here. -------
TENANT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
IMPLICIT_TENANTS = frozenset({"default", "anonymous", "api_keys", "privileged_api_keys"})
"""Names of callers without a configured tenant (no authentication, or a plain ``api_keys`` / ``privileged_api_keys``
key), reported as ``default``. A configured tenant may not take one (the audit log and /metrics would mix them)."""


class TenantThresholds(BaseModel):
    """Explicit decision thresholds for one tenant, applied to the probability of the server's artifact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    abstain: float = Field(ge=0, le=1, description="abstain below this probability")
    hedge: float = Field(ge=0, le=1, description="hedge below this probability, answer at or above")

    @model_validator(mode="after")
    def _ordered(self) -> TenantThresholds:
        if self.abstain > self.hedge:
            raise ValueError(f"thresholds: abstain ({self.abstain:g}) must be at most hedge ({self.hedge:g})")
        return self


class TenantSettings(BaseModel):
    """One tenant: its name and what it overrides; a field left out (None) keeps the server's value.

    Its keys are not here: ``gate keys add --tenant NAME`` writes their hashes to ``keys_file``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=TENANT_NAME_PATTERN, description="shown in the audit log and /metrics")
    privileged: bool = Field(default=False, description="may pick any mode and always gets gate.original")
    mode: GateMode | None = None
    allowed_modes: list[GateMode] | None = Field(default=None, min_length=1)
    artifact: Path | None = Field(
        default=None, description="its own calibration artifact (same model and signals as the server's)"
    )
    thresholds: TenantThresholds | None = Field(
        default=None, description="abstain/hedge thresholds on the server artifact's probability"
    )
    signals: list[str] | None = Field(
        default=None, min_length=1, description="the signals it may use: narrows the server's, never widens"
    )
    max_gate_calls: int | None = Field(default=None, ge=1)
    max_gate_tokens: int | None = Field(default=None, ge=1)
    max_gate_seconds: float | None = Field(default=None, gt=0)
    rate_limit_rps: float | None = Field(default=None, gt=0, description="requests/s for the tenant, all keys")
    rate_limit_burst: int | None = Field(default=None, ge=1)
    daily_quota: int | None = Field(default=None, ge=1, description="units per UTC day for the tenant, all keys")
    daily_quota_unit: Literal["requests", "calls", "tokens"] = Field(
        default="requests",
        description="what daily_quota counts: requests; LLM calls (the answer's and the gate's own); or their tokens."
        " A request takes one unit when admitted and the rest of its usage once answered",
    )

    @field_validator("name")
    @classmethod
    def _not_implicit(cls, name: str) -> str:
        if name in IMPLICIT_TENANTS:
            raise ValueError(f"tenant name {name!r} is reserved ({sorted(IMPLICIT_TENANTS)})")
        return name

    @model_validator(mode="after")
    def _one_target(self) -> TenantSettings:
        if self.artifact is not None and self.thresholds is not None:
            raise ValueError(f"tenant {self.name!r}: give artifact or thresholds, not both")
        return self

    def overrides(self) -> dict[str, Any]:
        """The server settings this tenant sets, by their ``Settings`` names."""
        names = ("mode", "allowed_modes", "max_gate_calls", "max_gate_tokens", "max_gate_seconds")
        names += ("rate_limit_rps", "rate_limit_burst", "daily_quota")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class Settings(BaseSettings):
    """Everything the gate can be configured with; every field has a working offline default."""

    model_config = SettingsConfigDict(env_prefix="GATE_", extra="forbid", validate_default=True)

    config_file: Path | None = Field(default=None, description="YAML file the values came from")
    model: str = Field(default=DEFAULT_MODEL, min_length=1, description="any litellm model name")
    api_base: str | None = Field(default=None, description="base URL of an OpenAI-compatible endpoint")
    api_key: SecretStr | None = Field(default=None, description="upstream API key (never printed)")
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="per upstream call")
    max_retries: int = Field(default=2, ge=0, le=10, description="retries on 429, 5xx and timeouts")
    max_tokens: int = Field(default=64, ge=1, le=32768, description="default answer length")
    transport: Literal["auto", "litellm", "direct"] = Field(
        default="auto",
        description="auto: OpenAI-compatible api_base (openai/<name>) directly over HTTP, anything else via litellm",
    )
    native_n: Literal["auto", "always", "never"] = Field(
        default="auto", description="ask the provider for n samples in one call, or make n calls"
    )
    embedder: str = Field(default=DEFAULT_EMBEDDER, min_length=1)
    cache_dir: Path = Field(default=Path.home() / ".cache" / "llm-gate")
    local_n_ctx: int = Field(default=2048, ge=256, le=32768)
    local_n_threads: int | None = Field(default=None, ge=1, le=256)
    local_extra_buffers: ExtraBuffers = Field(
        default="auto",
        description="llama.cpp extra buffer types (CPU repack, AMX); auto: off where CPU and build have AMX (crashes)",
    )
    data_dir: Path | None = Field(default=None, description="development datasets (GATE_DATA_DIR)")
    artifact: Path | None = Field(
        default=None, description="calibration artifact (JSON); default: the shipped one for the embedded model"
    )
    index_dir: Path | None = Field(default=None, description="retrieval index for PACE (`gate index build`)")
    signals: list[str] | None = Field(
        default=None, description="signals to compute (keys of the default suite); default: all of them"
    )
    precheck: bool = Field(
        default=True,
        description="familiarity before generating (abstain early, where the artifact has a cut); false: it joins"
        " the full stage",
    )
    familiarity_cache: Literal["file", "memory", "off"] = Field(
        default="file",
        description="keep concept familiarity across requests: in cache_dir/familiarity.sqlite (shared by"
        " processes; on Redis instead, shared by replicas, when state is a Redis URL), in memory only, or not at"
        " all; the file holds concept names taken from questions (Redis only their hashes)",
    )
    context_tokens: int = Field(
        default=512,
        ge=1,
        le=32768,
        description="how much of a conversation the signals read: the last user turn resolved against the most"
        " recent earlier turns within this many tokens (estimated)",
    )
    tool_calls: Literal["pass", "assess"] = Field(
        default="pass",
        description="an answer that calls tools: pass it on not_assessed, or assess how often samples make the same"
        " calls (one more LLM call; withheld below the abstain threshold)",
    )
    assess_all: bool = Field(
        default=False,
        description="assess every request as a factual question; false: creative writing, rewriting, code and"
        " chit-chat (and tasks over supplied text, unless pace is among the signals) pass as not_assessed",
    )
    cascade: bool = Field(default=True, description="run the full stage only when the free stage leaves it open")
    max_gate_calls: int | None = Field(default=None, ge=1, description="LLM calls the gate may spend per request")
    max_gate_tokens: int | None = Field(default=None, ge=1, description="tokens the gate may spend per request")
    max_gate_seconds: float | None = Field(default=None, gt=0, description="seconds the gate may spend per request")
    log_level: Literal["debug", "info", "warning", "error"] = "warning"

    # The proxy (`gate serve`): request defaults and the bounds a request cannot pass (see gate/policy.py).
    mode: GateMode = Field(default="enforce", description="default per-request mode: off, observe or enforce")
    allowed_modes: list[GateMode] = Field(
        default_factory=lambda: ["enforce"],
        min_length=1,
        description="modes a request may pick besides `mode` (privileged keys: any); off and observe skip enforcement",
    )
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="client API keys (Bearer), e.g. GATE_API_KEYS='[\"k1\"]'; no keys at all (here or in "
        "privileged_api_keys): no auth",
    )
    privileged_api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="client keys that may pick any mode and always get gate.original (operators, evaluation)",
    )
    public_paths: list[str] = Field(
        default_factory=lambda: ["/healthz", "/readyz"],
        description="paths served without a key when keys are configured (e.g. add /metrics for a scraper)",
    )
    include_original: bool = Field(
        default=False, description="ship the model's own answer in gate.original to every client (privileged: always)"
    )
    hedge_message: str = Field(default="Note: I am not confident in this answer.", min_length=1)
    hedge_position: Literal["prefix", "suffix"] = Field(default="suffix", description="where the hedge note goes")
    abstain_message: str = Field(
        default="I can't answer this reliably, so I won't guess. Reason: {reason}.",
        min_length=1,
        description="replaces the answer on abstain; {reason} is the first reason, {reasons} all of them",
    )
    # Long answers judged claim by claim (gate/claim_*.py, docs/claims.md).
    claims: Literal["off", "annotate", "mark", "strike"] = Field(
        default="annotate",
        description="long answers (several sentences) and tasks over supplied text are judged claim by claim; "
        "annotate: the gate object lists each claim's verdict, text unchanged; mark: unsupported claims marked "
        "inline (claim_mark); strike: removed (claim_strike_note); off: the answer is judged whole. Default "
        "annotate: judged whole, a paragraph nearly always abstains (its signals are made for short answers), "
        "while annotate delivers it with a verdict per sentence and still abstains when no claim is supported; "
        "mark and strike change the text, which an operator should choose knowingly. A request may ask for a "
        "stricter policy (gate.claims), never a laxer one",
    )
    claim_mark: str = Field(
        default="[unverified: {claim}]",
        min_length=1,
        description="replaces an unsupported claim under claims: mark; {claim} its text, {probability} its probability",
    )
    claim_strike_note: str = Field(
        default="Note: {count} statement(s) that could not be verified were removed.",
        min_length=1,
        description="appended under claims: strike when claims were removed; {count} how many",
    )
    claims_grounded_artifact: Path | None = Field(
        default=None,
        description="claim artifact of the grounded route (reads claim_support); default: an uncalibrated mapping "
        "said in the reasons (the shipped QA-fitted one is opt-in: docs/claims.md)",
    )
    claims_closed_artifact: Path | None = Field(
        default=None,
        description="claim artifact of the closed-book route (reads claim_consistency); default as above",
    )
    claim_samples: int = Field(
        default=5, ge=1, le=20, description="answers sampled (one call) to judge a long answer's claims closed-book"
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000, description="larger bodies get 413")
    max_concurrency: int = Field(default=8, ge=1, le=10_000, description="in-flight requests; more get 429")
    retry_after_s: int = Field(default=1, ge=1, le=3600, description="retry-after sent with a 429")
    request_timeout_s: float = Field(default=120.0, gt=0, le=3600, description="whole request, gate included")
    max_answer_tokens: int = Field(default=1024, ge=1, le=32768, description="largest max_tokens a request may ask")
    max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        le=1_048_576,
        description="request line and headers (uvicorn's h11 limit, checked between reads of up to 64 KiB); "
        "larger: uvicorn's own plain-text 400 and the connection closed",
    )
    max_upstream_bytes: int = Field(
        default=10_000_000,
        ge=1024,
        le=1_000_000_000,
        description="largest upstream response: the direct transport stops reading there, litellm's is checked once"
        " parsed; larger: 502 upstream response too large",
    )

    # The proxy's audit log (gate/audit/log.py) and /metrics (gate/server/metrics.py).
    audit_path: Path | None = Field(default=None, description="JSONL audit log, one line per request; None: no log")
    audit_question: Literal["text", "hash"] = Field(
        default="hash", description="log the question's text, or only its SHA-256"
    )
    audit_max_bytes: int = Field(default=50_000_000, ge=1024, description="rotate the audit log beyond this size")
    audit_backups: int = Field(default=5, ge=0, le=1000, description="rotated audit files kept: path.1, path.2 ...")
    audit_stream: bool = Field(
        default=False,
        description="also append every audit line to the Redis stream gate:audit, shared by replicas (needs state "
        "on Redis; gate audit tail/summary --redis read it)",
    )
    audit_stream_maxlen: int = Field(
        default=1_000_000, ge=1, description="audit entries the Redis stream keeps (about: Redis trims whole nodes)"
    )
    feedback_path: Path | None = Field(
        default=None,
        description="JSONL of the labels POSTed to /v1/gate/feedback (gate monitor joins them with the audit log); "
        "default: beside audit_path (audit.jsonl -> audit.feedback.jsonl), rotated like it; with audit_stream the "
        "labels also go to the Redis stream gate:feedback",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="where the workers of gate serve --workers keep their /metrics values, emptied at start "
        "(prometheus_client's PROMETHEUS_MULTIPROC_DIR; a temporary directory unless set)",
    )

    # Shared state across replicas (gate/state/, docs/scale.md). The default keeps everything in the process.
    state: str = Field(
        default="memory",
        description="where replicas share caches and per-key rate limits: memory (this process only, no server "
        "needed) or a Redis URL, redis://[:password@]host:port/db (rediss:// for TLS); the password is never shown",
    )
    state_failure: StateFailure = Field(
        default="open",
        description="when Redis cannot be reached: open = the gate goes on without it (a cache miss, rate limits "
        "not enforced), logged once per outage; closed = requests that need it get 503. Default open because the "
        "state is an optimisation and a fairness limit, not a safety control: every answer is still assessed, so a "
        "Redis outage must not become a gate outage; pick closed where quotas are a billing or abuse boundary",
    )
    state_timeout_s: float = Field(
        default=0.25,
        gt=0,
        le=30,
        description="connect and read timeout of every Redis call; after a failure Redis is not tried again for "
        "state_retry_s, so a Redis that is down or unreachable costs a request at most this long, never a hang",
    )
    state_max_connections: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Redis connections per process and client; beyond it a call waits for one, at most state_timeout_s",
    )
    state_retry_s: float = Field(
        default=5.0, gt=0, le=3600, description="how long Redis is left alone after a failed call before the next try"
    )
    state_cache_ttl_s: int = Field(
        default=7 * 86_400, ge=1, description="how long a familiarity score lives in Redis after it was last written"
    )
    state_cache_max_entries: int = Field(
        default=200_000,
        ge=1,
        description="familiarity scores kept in Redis per model; beyond it the least recently written go (at once, "
        "in the same script as the write)",
    )
    assessment_cache_ttl_s: int = Field(
        default=0,
        ge=0,
        le=30 * 86_400,
        description="keep the assessment of a greedy (temperature 0) request this long and serve an identical one "
        "from it at no LLM call, shared by replicas on Redis; 0: off (default: a cache holds questions and answers)",
    )
    assessment_cache_max_entries: int = Field(
        default=10_000, ge=1, description="assessments the cache keeps (per process in memory, in all on Redis)"
    )
    rate_limit_rps: float | None = Field(
        default=None,
        gt=0,
        description="requests per second per API key, across all replicas (token bucket on Redis); None: no limit",
    )
    rate_limit_burst: int | None = Field(
        default=None,
        ge=1,
        description="requests a key may send at once (bucket size); default: rate_limit_rps, rounded up",
    )
    daily_quota: int | None = Field(
        default=None,
        ge=1,
        description="requests per API key per UTC day, across all replicas (each admitted request is one upstream "
        "answer call); None: no quota",
    )

    # Tenants (gate/tenants/, docs/tenants.md): several key holders with their own policies; see TenantSettings.
    tenants: list[TenantSettings] = Field(
        default_factory=list,
        description="tenants and their overrides; with any tenant configured every request needs a key",
    )
    keys_file: Path | None = Field(
        default=None,
        description="YAML file of hashed tenant keys written by `gate keys` (relative: to the config file); "
        "re-read with the rest on SIGHUP",
    )

    @field_validator("state")
    @classmethod
    def _state(cls, value: str) -> str:
        if value == "memory":
            return value
        parts = urlsplit(value)
        where = parts.path if parts.scheme == "unix" else parts.hostname
        if parts.scheme not in STATE_SCHEMES or not where:
            raise ValueError(f"state is 'memory' or a Redis URL ({', '.join(s + '://...' for s in STATE_SCHEMES)})")
        return value

    @model_validator(mode="after")
    def _limits_need_redis(self) -> Settings:
        if (self.rate_limit_rps is not None or self.daily_quota is not None) and self.state == "memory":
            raise ValueError("rate_limit_rps and daily_quota are enforced on Redis: set state to a redis:// URL")
        if self.audit_stream and self.state == "memory":
            raise ValueError("audit_stream appends to a Redis stream: set state to a redis:// URL")
        if self.rate_limit_burst is not None and self.rate_limit_rps is None:
            raise ValueError("rate_limit_burst needs rate_limit_rps")
        return self

    @model_validator(mode="after")
    def _tenants_consistent(self) -> Settings:
        names = [tenant.name for tenant in self.tenants]
        if len(set(names)) != len(names):
            raise ValueError(f"tenant names must be unique, got {sorted(names)}")
        limited = [t.name for t in self.tenants if t.rate_limit_rps is not None or t.daily_quota is not None]
        if limited and self.state == "memory":
            raise ValueError(
                f"tenants {limited} have rate limits or quotas, enforced on Redis: set state to a redis:// URL"
            )
        for tenant in self.tenants:
            if tenant.daily_quota_unit != "requests" and (tenant.daily_quota or self.daily_quota) is None:
                raise ValueError(f"tenant {tenant.name!r}: daily_quota_unit needs a daily_quota")
            if tenant.rate_limit_burst is not None and (tenant.rate_limit_rps or self.rate_limit_rps) is None:
                raise ValueError(f"tenant {tenant.name!r}: rate_limit_burst needs rate_limit_rps")
        return self

    @field_validator("public_paths")
    @classmethod
    def _paths(cls, paths: list[str]) -> list[str]:
        wrong = [path for path in paths if not path.startswith("/")]
        if wrong:
            raise ValueError(f"paths start with '/' (exact paths, no patterns), got {wrong}")
        return paths

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit arguments win, then the environment, then the YAML file."""
        aliases = InitSettingsSource(settings_cls, init_kwargs=_upstream_aliases())
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, aliases]
        yaml_path = _yaml_path(init_settings)
        if yaml_path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_path))
        return tuple(sources)

    def display(self) -> dict[str, Any]:
        """The effective values, secrets masked, as plain JSON-able data."""
        values = self.model_dump(mode="json")
        if self.api_key is not None:
            values["api_key"] = "***"
        if self.api_base:
            values["api_base"] = without_password(self.api_base)
        values["state"] = without_password(self.state)
        return values


def without_password(url: str) -> str:
    """``url`` with the password of its user info (``https://user:secret@host``) masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _upstream_aliases() -> dict[str, str]:
    """``GATE_UPSTREAM_MODEL`` and friends, as the fields they stand for."""
    return {field: os.environ[name] for name, field in UPSTREAM_ENV_ALIASES.items() if os.environ.get(name)}


def _yaml_path(init_settings: PydanticBaseSettingsSource) -> Path | None:
    explicit = init_settings.init_kwargs.get("config_file") if isinstance(init_settings, InitSettingsSource) else None
    raw = explicit or os.environ.get(CONFIG_ENV_VAR)
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist (from --config or {CONFIG_ENV_VAR})")
    return path


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning validation errors into one readable ``ConfigError``."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # unreadable or malformed YAML
        where = " ".join(str(exc).split())  # PyYAML's message spans lines (the mark, the context)
        raise ConfigError(f"could not read the configuration: {where}") from None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(file)"
        if isinstance(error.get("input"), dict):  # a check across fields: its input is every value, secrets too
            lines.append(f"  {error['msg']}")
            continue
        env = f"GATE_{field.upper()}"
        shown = "***" if field.split(".")[0] in SECRET_FIELDS else repr(error.get("input"))
        if field == "state" and isinstance(error.get("input"), str):
            shown = repr(without_password(error["input"]))
        lines.append(f"  {field} ({env}): {error['msg']}; got {shown}")
    return "\n".join(lines)
