"""ChatGLM-6B, ChatGLM2-6B and ChatGLM3-6B in plain PyTorch, without their remote code.

- :mod:`~inference.chatglm.config`: the official ``config.json``; which ChatGLM a folder is.
- :mod:`~inference.chatglm.model_v1`, :mod:`~inference.chatglm.model_v2`: the networks.
- :mod:`~inference.chatglm.loader`: checkpoint folders (.bin or safetensors, sharded or not).
- :mod:`~inference.chatglm.quantize`: weight-only int8.
- :mod:`~inference.chatglm.tokenizer`, :mod:`~inference.chatglm.chat`: text in and out.
- :mod:`~inference.chatglm.generate`: batched generation with a preallocated KV cache.
- :mod:`~inference.chatglm.backend`: the "chatglm" engine of :mod:`inference.registry`.

Importing this package imports nothing heavy; torch is loaded by the modules that need it.
"""
