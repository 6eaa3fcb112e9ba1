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
