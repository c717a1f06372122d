"""Network architectures, looked up by name through the registry (the public names are listed
here); what every network is: :mod:`stereo_semantic_ros.networks.contract`."""

from stereo_semantic_ros.networks import (  # noqa: F401  (importing registers the builders)
    corr_mtl,
    esp_joint,
    hybridnet,
    pseudo_mtl,
    synchronized,
)
from stereo_semantic_ros.networks.registry import (
    GEOMETRIES,
    geometry_of,
    get_model,
    get_model_builder,
    hyper_parameters,
    list_models,
    register_model,
)

__all__ = [
    "GEOMETRIES",
    "geometry_of",
    "get_model",
    "get_model_builder",
    "hyper_parameters",
    "list_models",
    "register_model",
]
