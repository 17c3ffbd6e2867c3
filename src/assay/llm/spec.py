"""The recipe's ``llm:`` block: which server and model, how hard to push it, what it costs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class LLMSpec(BaseModel):
    """How every LLM step of a recipe reaches its model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["openai", "transformers"] = Field(
        "openai", description="openai: an OpenAI-compatible HTTP server; transformers: a local "
        "model run in each worker process (small jobs, no server; extra llm-local)")
    base_url: str | None = Field(None, description="openai: the server's API root, e.g. http://127.0.0.1:8000/v1")
    model: str = Field(description="openai: the model name the server knows; transformers: a model "
                       "folder or a .gguf file")
    api_key_env: str | None = Field(
        None, description="environment variable holding the API key (none: local servers)")
    max_concurrency: int = Field(
        16, ge=1, le=4096, description="requests in flight at once (transformers: the batch size)")
    timeout_s: float = Field(60.0, gt=0, description="per request, before it is retried")
    max_retries: int = Field(4, ge=0, le=20, description="retries on 429, 5xx, timeouts, lost connections")
    backoff_s: float = Field(1.0, ge=0, description="first retry's wait; doubles each retry")
    temperature: float = Field(0.0, ge=0, le=2)
    seed: int | None = Field(0, description="sent with each request where the server honours it")
    max_tokens: int = Field(512, ge=1, description="longest answer")
    price_in_per_m: float = Field(0.0, ge=0, description="USD per million input tokens")
    price_out_per_m: float = Field(0.0, ge=0, description="USD per million output tokens")
    max_requests: int | None = Field(None, ge=0, description="cap on requests sent (cache hits are free)")
    max_cost_usd: float | None = Field(None, ge=0, description="cap on money spent")
    cache: str | None = Field(
        None, description="the request cache's SQLite file; default OUTPUT/cache/llm.sqlite "
        "(required when the output is not a local folder: SQLite needs local locks)")

    @model_validator(mode="after")
    def _backend_needs(self) -> LLMSpec:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("backend openai needs base_url (the server's API root)")
        return self

    def decisive(self) -> dict[str, object]:
        """What decides the answers (the rest only changes how fast or how dear they come)."""
        return {"model": self.model, "temperature": self.temperature, "seed": self.seed,
                "max_tokens": self.max_tokens}

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.price_in_per_m + tokens_out * self.price_out_per_m) / 1e6
