"""The ``head`` representation is the input of the head's logits layer, not a copy of the last layer
(#32 item 15): on tiny random RoBERTa and BERT models, against the formula of each head."""

from __future__ import annotations

import numpy as np
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from mixsweep.store.outputs import RepresentationCapture

SIZES = dict(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@torch.no_grad()
def _capture(model, ids: torch.Tensor) -> tuple[dict[str, np.ndarray], object]:
    model.eval()
    cap = RepresentationCapture(model, ["layer_2", "head"], np.arange(len(ids)))
    with torch.no_grad(), cap:
        out = model(input_ids=ids, **cap.forward_kwargs)
        cap.add(out, len(ids))
    return cap.arrays(), out


@torch.no_grad()
def test_roberta_head_is_the_dense_tanh_of_cls_not_the_last_layer():
    torch.manual_seed(0)
    model = RobertaForSequenceClassification(RobertaConfig(**SIZES))
    ids = torch.randint(3, 40, (5, 7))
    arrays, out = _capture(model, ids)
    cls = out.hidden_states[2][:, 0]
    # RobertaClassificationHead: out_proj(dropout(tanh(dense(dropout(h_L[:, 0]))))), dropout off in eval
    expected = torch.tanh(model.classifier.dense(cls)).numpy().astype(np.float16)
    assert np.array_equal(arrays["head"], expected)
    assert not np.allclose(arrays["head"], arrays["layer_2"], atol=1e-2)
    # and it gives the logits through out_proj
    logits = model.classifier.out_proj(torch.from_numpy(arrays["head"].astype(np.float32)))
    assert torch.allclose(logits, out.logits, atol=1e-2)


@torch.no_grad()
def test_bert_head_is_still_the_pooler_output():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**SIZES))
    ids = torch.randint(3, 40, (5, 7))
    arrays, out = _capture(model, ids)
    expected = model.bert.pooler(out.hidden_states[2]).numpy().astype(np.float16)
    assert np.array_equal(arrays["head"], expected)
