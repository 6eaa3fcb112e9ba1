"""An example ferbench plug-in: registers ``tiny_fer_cnn`` through the ``ferbench.models`` entry point."""

from pathlib import Path

from ferbench.models import register_model

from ferbench_example_plugin.model import TinyFerCNN, tiny_fer_cnn

CARD = Path(__file__).parent / "cards" / "tiny_fer_cnn.yaml"
"""The model card of ``tiny_fer_cnn`` (pass it to ``ferbench run --models``)."""


def register() -> None:
    """Register this package's models with ferbench (the entry point; ferbench calls it once)."""
    register_model("tiny_fer_cnn", input_size=(1, 48, 48), family="example", paper="-")(tiny_fer_cnn)


__all__ = ["CARD", "TinyFerCNN", "register", "tiny_fer_cnn"]
