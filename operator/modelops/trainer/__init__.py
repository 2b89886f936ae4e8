"""The training entrypoint run inside TrainingJob pods: ``modelops train``.

- ``cli``: flags; launches torchrun, or runs a worker (no torch import)
- ``launch``: the torchrun command from the pod's environment (no torch import)
- ``contract``: what a training module provides (``build``, ``load_dataset``, ``TrainingSpec``)
- ``hparams``: ``--hp key=value`` parsing and typed access
- ``settings``: the runner's hyperparameters (epochs, batch_size, seed, val_fraction)
- ``worker``: one rank: resume, train, and on rank 0 export and publish
- ``distributed``: process group (gloo on CPU, NCCL on GPU) and collectives
- ``dataset`` / ``fetch``: train/validation split, sharded loaders; dataset files from storage
- ``loop``: the DDP training loop and its checkpointable state
- ``checkpoint``: atomic per-epoch checkpoints, newest-first selection
- ``export`` / ``reference`` / ``metrics``: TorchScript version with drift reference and metrics
- ``result``: the JSON result line / termination message the operator reads
- ``examples.tabular``: a built-in MLP on 20 tabular features
"""
