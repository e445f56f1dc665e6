"""umT5 caption embeddings for Wan models, run by ``transformers`` (the ``umt5`` extra).

Wan 2.1 reads its captions through umT5-XXL's encoder: a caption is cleaned as the released
pipeline cleans it, tokenized to at most 512 tokens, encoded with its mask and cut to its
true length (the data pipeline pads it back with zeros, as the release does). Two uses:

* the text-encoder hook for captions precomputed by the data builders:
  ``--config.text.encoder=eye2eye_jax.data.umt5_text:encode_caption`` with
  ``$EYE2EYE_UMT5`` set to a release folder (its ``tokenizer/`` and ``text_encoder/``);
* ``empty_caption_embedding``, which ``ckpt import`` stores with an imported model so that
  converting without a caption needs no text encoder at all.
"""

from __future__ import annotations

import functools
import html
import os
import pathlib
import re

import numpy as np

ENVIRONMENT = 'EYE2EYE_UMT5'
MAX_TOKENS = 512  # the released pipeline's caption length


def clean(caption: str) -> str:
  """The released pipeline's cleaning: ftfy's fixes (when installed), HTML entities
  unescaped twice, runs of whitespace made one space."""
  try:
    import ftfy
    caption = ftfy.fix_text(caption)
  except ImportError:
    pass
  caption = html.unescape(html.unescape(caption)).strip()
  return re.sub(r'\s+', ' ', caption).strip()


class Umt5Encoder:
  """caption -> (tokens, width) float32: umT5's last hidden states of the real tokens."""

  def __init__(self, release: str | os.PathLike, max_tokens: int = MAX_TOKENS):
    try:
      import torch
      import transformers
    except ImportError as error:
      raise ValueError(f'the umT5 text encoder needs the umt5 extra (pip install -e '
                       f'".[umt5]"): {error}') from None
    root = pathlib.Path(release)
    for part in ('tokenizer', 'text_encoder'):
      if not (root / part).is_dir():
        raise ValueError(f'{root / part}: missing (a Wan release folder holds tokenizer/ and '
                         'text_encoder/)')
    self._torch = torch
    self.tokenizer = transformers.AutoTokenizer.from_pretrained(root / 'tokenizer')
    self.model = transformers.UMT5EncoderModel.from_pretrained(
        root / 'text_encoder', torch_dtype=torch.float32).eval()
    self.max_tokens = max_tokens

  def __call__(self, caption: str) -> np.ndarray:
    tokens = self.tokenizer([clean(caption)], padding='max_length', max_length=self.max_tokens,
                            truncation=True, add_special_tokens=True,
                            return_attention_mask=True, return_tensors='pt')
    with self._torch.no_grad():
      hidden = self.model(tokens.input_ids, tokens.attention_mask).last_hidden_state[0]
    length = int(tokens.attention_mask[0].sum())
    return hidden[:length].float().numpy()


@functools.cache
def _encoder_for(release: str) -> Umt5Encoder:
  return Umt5Encoder(release)


def encode_caption(caption: str) -> np.ndarray:
  """The ``text.encoder`` hook: umT5 of the release folder named by ``$EYE2EYE_UMT5``."""
  release = os.environ.get(ENVIRONMENT)
  if not release:
    raise ValueError(f'set ${ENVIRONMENT} to a Wan release folder (with tokenizer/ and '
                     'text_encoder/) to encode captions with umT5')
  return _encoder_for(release)(caption)


def empty_caption_embedding(release: str | os.PathLike,
                            max_tokens: int = MAX_TOKENS) -> np.ndarray:
  """The empty caption's embedding, zero-padded to ``max_tokens`` as the release pads it."""
  embedding = Umt5Encoder(release, max_tokens)('')
  padded = np.zeros((max_tokens, embedding.shape[1]), np.float32)
  padded[:len(embedding)] = embedding
  return padded
