"""Backends chosen by name from configuration, and kept loaded once per process."""

from __future__ import annotations

import importlib
import threading
from typing import Protocol

from inference.chatglm.config import is_chatglm_folder
from inference.types import ChoiceRequest, ChoiceResult, GenerationRequest, GenerationResult


class Backend(Protocol):
    """What every engine offers: batched generation and batched choice scoring."""

    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]: ...

    def score_choices(self, requests: list[ChoiceRequest]) -> list[ChoiceResult]: ...


BACKENDS: dict[str, str] = {
    "transformers": "inference.transformers_backend.TransformersBackend",
    "openai": "inference.openai_backend.OpenAICompatibleBackend",
    "chatglm": "inference.chatglm.backend.ChatGLMBackend",
}

_loaded: dict[tuple[object, ...], Backend] = {}
_lock = threading.Lock()


def engine_for(engine: str, model: str) -> str:
    """The engine that runs ``model``: a ChatGLM folder configured for the transformers
    engine goes to the native "chatglm" engine (its remote code does not run on ours)."""
    return "chatglm" if engine == "transformers" and is_chatglm_folder(model) else engine


def load_backend(engine: str, model: str, device: str = "auto", **options: object) -> Backend:
    """Return the backend for ``model``, loading it on first use in this process.

    ``options`` go to the backend's constructor (an inference server's ``base_url``...).
    Later calls with the same arguments return the same object, so a worker process
    loads its model once, not once per task. A failed load is not cached: the next
    call tries again (the model may have been installed meanwhile).
    """
    engine = engine_for(engine, model)
    key = (engine, model, device, *sorted(options.items()))
    with _lock:
        if key not in _loaded:
            if engine not in BACKENDS:
                raise ValueError(f"Unknown engine {engine!r}; choose one of {sorted(BACKENDS)}")
            module_name, class_name = BACKENDS[engine].rsplit(".", 1)
            backend_class = getattr(importlib.import_module(module_name), class_name)
            _loaded[key] = backend_class(model, device=device, **options)
        return _loaded[key]
