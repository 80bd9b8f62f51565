"""The four emotion classifiers and the registry that builds them by name."""

from fer_desktop.models.registry import ModelSpec, create_model, get_spec, list_models, register_model

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
