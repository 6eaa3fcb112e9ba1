"""Shared test constants: a tiny plug-in card built from the example package's factory."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FACTORY = REPO / "examples" / "ferbench-example-plugin" / "src" / "ferbench_example_plugin" / "model.py"
CLASSES7 = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
TINY_PLUGIN_CARD = f"""\
name: tiny_plugin
factory: {FACTORY}:tiny_fer_cnn
input: {{channels: 1, size: [48, 48], normalise: standardize}}
recipe:
  epochs: 1
  batch_size: 16
  optimizer: {{name: adam, lr: 3.0e-3}}
"""


def tiny_microexpnet_card(epochs: int, lr: float = 1e-3, schedule: str = "") -> str:
    """A MicroExpNet-XXS card (84 x 84, batch 32, Adam at ``lr``, cross-entropy) for ``epochs``
    epochs, with an optional ``schedule`` line (YAML flow mapping): the runner tests' tiny card."""
    lines = ["name: tiny_microexpnet", "model: microexpnet_xxs",
             "input: {channels: 1, size: [84, 84], normalise: unit}", "recipe:", f"  epochs: {epochs}",
             "  batch_size: 32", f"  optimizer: {{name: adam, lr: {lr}}}"]
    lines += [f"  schedule: {schedule}"] if schedule else []
    return "\n".join([*lines, "  objective: {name: cross_entropy}", ""])
