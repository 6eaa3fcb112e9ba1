"""Baseline architectures, looked up by name: see :mod:`ferbench.models.registry` for the contract."""

from ferbench.models import (  # noqa: F401  (importing a family registers its models)
    classical,
    ed2l,
    emotionnet_nano,
    lopes,
    microexpnet,
    mobilenet,
    teacher,
)
from ferbench.models.registry import ModelInfo, create_model, list_models, model_info, register_model

__all__ = ["ModelInfo", "create_model", "list_models", "model_info", "register_model"]
