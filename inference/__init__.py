"""The LLM engine behind ReplyHub's drafts.

Plain Python: nothing here imports Django. ``drafts`` talks to it through
``inference.registry.load_backend`` and ``inference.drafting.draft_reply``.
"""
