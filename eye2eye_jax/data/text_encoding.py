"""Captions -> text embeddings for the UNet's cross-attention, with a pluggable encoder.

``text.encoder`` in the config names the encoder:

* ``'hashed_words'``: built in, no download: each lower-cased word becomes a fixed random
  unit vector seeded by a hash of the word (a bag of words with its order kept). It is what
  the tests and the demo-scale backbones use;
* ``'package.module:function'``: any callable ``caption -> (tokens, model.text_embed_dim)``
  array (e.g. a wrapper around a T5 or CLIP text encoder);
* ``'precomputed'``: the dataset's own ``text_embedding`` feature (the Stereo4D builder
  stores one when it is given a text encoder).

Embeddings are padded or cut to ``text.max_tokens`` tokens, with a mask of the real ones;
an empty caption has an all-False mask, which the UNet treats as "no text".
"""

from __future__ import annotations

import importlib
import re
import zlib

import ml_collections
import numpy as np


def load_callable(spec: str):
  """The object named by ``"module.path:attribute"``; a clear error when it is missing."""
  module_name, _, attribute = spec.partition(':')
  if not module_name or not attribute:
    raise ValueError(f'{spec!r}: name a callable as "package.module:function"')
  try:
    found = getattr(importlib.import_module(module_name), attribute)
  except (ImportError, AttributeError) as error:
    raise ValueError(f'{spec!r}: cannot load it ({error})') from error
  if not callable(found):
    raise ValueError(f'{spec!r} is not callable')
  return found


class HashedWords:
  """Each word -> a unit vector drawn from a generator seeded by the word's CRC32."""

  def __init__(self, embed_dim: int):
    self.embed_dim = embed_dim

  def __call__(self, caption: str) -> np.ndarray:
    words = re.findall(r"[a-z0-9']+", caption.lower())
    vectors = [np.random.default_rng(zlib.crc32(w.encode())).standard_normal(self.embed_dim)
               for w in words]
    if not vectors:
      return np.zeros((0, self.embed_dim), np.float32)
    vectors = np.stack(vectors)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


class TextEncoder:
  """Wraps an encoder callable (caption -> (N, D) array) and checks what it returns."""

  def __init__(self, encode, embed_dim: int, name: str = 'the text encoder'):
    self._encode = encode
    self.embed_dim = embed_dim
    self.name = name

  @classmethod
  def from_spec(cls, spec: str, embed_dim: int) -> 'TextEncoder':
    """'hashed_words' or 'package.module:function'."""
    if spec == 'hashed_words':
      return cls(HashedWords(embed_dim), embed_dim, spec)
    return cls(load_callable(spec), embed_dim, spec)

  def __call__(self, caption: str) -> np.ndarray:
    embedding = np.asarray(self._encode(caption), np.float32)
    if embedding.ndim != 2 or embedding.shape[1] != self.embed_dim:
      raise ValueError(f'{self.name} returned shape {embedding.shape} for {caption!r}; '
                       f'expected (tokens, {self.embed_dim})')
    return embedding


def pad_tokens(embedding: np.ndarray, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
  """(max_tokens, D) embedding and (max_tokens,) bool mask from an (N, D) embedding."""
  embedding = np.asarray(embedding, np.float32)[:max_tokens]
  n = embedding.shape[0]
  padded = np.zeros((max_tokens, embedding.shape[1]), np.float32)
  padded[:n] = embedding
  return padded, np.arange(max_tokens) < n


def uses_text(config: ml_collections.ConfigDict) -> bool:
  return bool(config.model.text_embed_dim)


def caption_encoder(config: ml_collections.ConfigDict):
  """caption -> (text (max_tokens, D), mask (max_tokens,)) for the config's model, or None
  when the model reads no text or the embeddings come precomputed with the data."""
  if not uses_text(config):
    return None
  spec = config.text.encoder
  if not spec:
    raise ValueError(f'model.text_embed_dim={config.model.text_embed_dim} needs text.encoder '
                     "('hashed_words', 'precomputed' or 'package.module:function')")
  if spec == 'precomputed':
    return None
  encoder = TextEncoder.from_spec(spec, int(config.model.text_embed_dim))
  return lambda caption: pad_tokens(encoder(caption), int(config.text.max_tokens))
