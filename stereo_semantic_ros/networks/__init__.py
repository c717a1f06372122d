"""Network architectures, looked up by name through the registry."""

from stereo_semantic_ros.networks import (  # noqa: F401  (importing registers the builders)
    corr_mtl,
    esp_joint,
    hybridnet,
)
from stereo_semantic_ros.networks.registry import (
    geometry_of,
    get_model,
    get_model_builder,
    hyper_parameters,
    list_models,
    register_model,
)

__all__ = [
    "geometry_of",
    "get_model",
    "get_model_builder",
    "hyper_parameters",
    "list_models",
    "register_model",
]
