"""The counter's settings (no TensorFlow)."""

from dataclasses import dataclass, field

from charseq.settings import BackboneConfig


@dataclass
class ModelConfig:
    """The counter's shape: the backbone, then one number from its final state."""

    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(units=16, embedding_dim=8))

    def validate(self) -> None:
        self.backbone.validate()
