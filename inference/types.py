"""Requests and results exchanged with a backend, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a chat prompt."""

    role: str  # "system", "user" or "assistant"
    content: str


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. ``temperature == 0`` means greedy decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 200
    repetition_penalty: float = 1.0
    seed: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        """The settings as stored on a draft."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_new_tokens": self.max_new_tokens,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class GenerationRequest:
    """A chat prompt to continue."""

    messages: tuple[ChatMessage, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass(frozen=True)
class GenerationResult:
    """What the model wrote for one request."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str  # "stop" (end of turn) or "length" (hit max_new_tokens)


@dataclass(frozen=True)
class ChoiceRequest:
    """A prompt and a closed set of answers to score by likelihood."""

    messages: tuple[ChatMessage, ...]
    choices: tuple[str, ...]


@dataclass(frozen=True)
class ChoiceResult:
    """Mean log-probability per token of each choice, in the order asked."""

    logprobs: tuple[float, ...]
    prompt_tokens: int
    seconds: float


class ModelLoadError(RuntimeError):
    """The configured model could not be loaded; the message says why."""
