"""Sequence models (NER, sentiment, language models): plain ``nn.Module``s, heads, and the
Lightning training helpers shared by the downstream stages."""

from pipeline.seq.encoder import EncoderConfig, SequenceEncoder, init_embedding_matrix
from pipeline.seq.heads import ClassificationHead, LMHead, TaggingHead, pool
from pipeline.seq.training import TrainerSettings, build_trainer, fit

__all__ = [
    "ClassificationHead",
    "EncoderConfig",
    "LMHead",
    "SequenceEncoder",
    "TaggingHead",
    "TrainerSettings",
    "build_trainer",
    "fit",
    "init_embedding_matrix",
    "pool",
]
