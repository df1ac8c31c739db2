"""Long-context evaluation: perplexity by token position on long held-out documents (``positions``,
``documents``), passkey retrieval (``passkey``), needles in a haystack (``niah``) and an associative-recall probe
(``mqar``). The settings of all four are one dataclass, :class:`LongContextConfig` (``config``, torch-free).

The names import on first use, so ``xatl eval --help`` loads without torch.
"""

from ...utils.lazy import lazy_exports

_EXPORTS = {"LongContextConfig": "config", "default_lengths": "config", "long_documents": "documents",
            "token_nll": "nll", "position_buckets": "positions", "bucket_sums": "positions",
            "run_ppl_position": "positions", "plot_ppl_position": "positions", "plot_ppl_curves": "positions", "context_limit": "state",
            "linear_cost": "state", "run_long_task": "tasks", "run_passkey": "passkey", "plot_passkey": "passkey", "plot_passkey_grid": "passkey",
            "run_niah": "niah", "plot_niah": "niah", "run_mqar": "mqar", "plot_mqar": "mqar"}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
