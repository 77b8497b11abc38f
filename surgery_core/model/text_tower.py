"""The text tower run on the prompts' own length: the same features, to the bit, as open_clip's padded pass.

open_clip's ``CLIP.encode_text`` runs every prompt over the whole context (77 tokens for OpenAI's towers) and
reads the feature at the end token. The causal mask makes a position depend only on the positions before it,
so the tokens after the longest prompt's end token never reach a feature that is read: running the tower on
the first ``n`` positions gives the same features in exact arithmetic. In floating point "the same" has to be
earned, and :func:`encode_tokens` earns it by keeping every reduction the same as in the padded pass:

* token embedding, positional embedding, the layer norms, GELU and the residual additions are per token;
* the linear layers (``in_proj``, ``out_proj``, ``c_fc``, ``c_proj``, the projection) are GEMMs whose rows
  are computed alike whatever the row count, once the row count is not tiny: the CPU kernel computes the
  last ``M mod 4`` rows of a GEMM with fewer than 12 rows another way (measured on this project's machines,
  MKL, AMD EPYC; e.g. 7 rows: rows 4-6 differ in the last bit from the same rows of a 300-row product).
  The short pass is therefore used only when the batch gives it at least :data:`MIN_ROWS` rows;
* attention is where a plain cut differs (max |diff| ~2.7e-6 after 12 layers of ViT-B/32): the CPU kernel of
  ``scaled_dot_product_attention`` (which ``nn.MultiheadAttention`` calls) reduces each softmax row and the
  weighted sum of values over the key length with vector lanes and a tail, so 13 keys and 77 keys (of which
  64 masked to -inf) are summed in another order. Here the queries are the ``n`` positions but the keys and
  values are padded with zeros back to the full context: the masked keys give ``exp(-inf) = 0`` weights
  exactly as the padded tokens' keys did, and every reduction runs over the same length in the same order.
  Padding keys costs ``n x 77`` attention products per head, a few percent of the linear layers' work.

Exact on the CPU (``tests/model/test_text_tower.py`` asserts ``torch.equal`` against ``encode_text`` on the demo
model and on a random-weight ViT-B-32, for DIOR's classes with both prompt sets, single and long prompts,
several batch sizes). On any other device, or for a text tower of another shape, :func:`encode_tokens` runs
open_clip's own padded pass: there the GEMM and attention kernels choose their algorithms by size (cuBLAS
split-K, the fused attention kernels' blockings) and nothing here has been verified, so nothing is assumed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.model import CLIP
from open_clip.transformer import ResidualAttentionBlock, text_global_pool

#: The fewest GEMM rows (prompts x positions) for which the short pass is used; below it, the padded pass.
MIN_ROWS = 16


def short_pass_supported(model) -> bool:
    """Whether :func:`encode_tokens` can run ``model``'s text tower on the prompts' length exactly: an open_clip
    ``CLIP`` in float32 on the CPU with a causal mask, plain attention blocks and end-token pooling."""
    if not isinstance(model, CLIP) or model.training or model.attn_mask is None:
        return False
    if model.text_pool_type not in ("argmax", "eos") or not model.transformer.batch_first:
        return False
    if model.token_embedding.weight.device.type != "cpu" or model.transformer.get_cast_dtype() != torch.float32:
        return False
    n = model.attn_mask.shape[0]
    causal = torch.full((n, n), float("-inf")).triu_(1)
    if model.attn_mask.dtype != torch.float32 or not torch.equal(model.attn_mask.cpu(), causal):
        return False
    for b in model.transformer.resblocks:
        if type(b) is not ResidualAttentionBlock or hasattr(b, "ln_1_kv") or not b.attn.batch_first:
            return False
        if not (isinstance(b.ls_1, torch.nn.Identity) and isinstance(b.ls_2, torch.nn.Identity)):
            return False
        if not b.attn._qkv_same_embed_dim or b.attn.in_proj_bias is None or b.attn.bias_k is not None:
            return False
    return True


def _pooled_positions(model: CLIP, tokens: torch.Tensor) -> torch.Tensor:
    """The position each prompt's feature is read at (open_clip's ``text_global_pool``)."""
    if model.text_pool_type == "argmax":
        return tokens.argmax(dim=-1)
    return (tokens == model.text_eos_id).int().argmax(dim=-1)


def _attention(block: ResidualAttentionBlock, x: torch.Tensor, mask: torch.Tensor, context: int) -> torch.Tensor:
    """``block.attn`` on ``x`` (``[B, n, D]``) with keys and values zero-padded to ``context`` positions."""
    attn = block.attn
    b, n, d = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(b, n, 3, heads, d // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    k = F.pad(k, (0, 0, 0, context - n))
    v = F.pad(v, (0, 0, 0, context - n))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b, n, d)
    return F.linear(out, attn.out_proj.weight, attn.out_proj.bias)


@torch.no_grad()
def encode_tokens(model, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)``, bit for bit, computed on the batch's longest prompt where that is exact
    (:func:`short_pass_supported` and at least :data:`MIN_ROWS` rows), else by ``encode_text`` itself."""
    context = tokens.shape[1]
    n = int(_pooled_positions(model, tokens).max()) + 1 if len(tokens) else context
    if n >= context or tokens.shape[0] * n < MIN_ROWS or not short_pass_supported(model):
        return model.encode_text(tokens)
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :n]).to(cast)
    x = x + model.positional_embedding[:n].to(cast)
    mask = model.attn_mask[:n].to(x.dtype)  # [n, context]: query rows of the causal mask, every key column
    for block in model.transformer.resblocks:
        x = x + _attention(block, block.ln_1(x), mask, context)
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(x)
    return x if model.text_projection is None else x @ model.text_projection
