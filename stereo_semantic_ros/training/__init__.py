"""The pieces of ``stereo-semantic-train`` (its loop and CLI: :mod:`stereo_semantic_ros.train`).

* :mod:`.config`: the YAML recipe, validated into dataclasses (``--set`` overrides);
* :mod:`.data`: datasets, augmentation, image statistics and class weights, data order;
* :mod:`.distributed`: torchrun's ranks and devices;
* :mod:`.optimisation`: the network, loss weighting, optimiser, schedule, one step;
* :mod:`.state`: what ``last.pt`` carries to resume, and the checkpoints themselves;
* :mod:`.provenance`: how the weights were made (command, data, machine, sessions);
* :mod:`.validation`: the held-out split, scored through the evaluation CLI's code path;
* :mod:`.runlog`: the per-step logs, training curves and end-of-run summary.
"""

PROG = "stereo-semantic-train"
# file names in a run directory (``--out``)
LAST = "last.pt"
FINAL = "final.pt"
