"""MLPF for hpoq (docs/mlpf.md): model, synthetic events, HDF5 shards, sampler, data-parallel training.

Modules: ``schema`` (column contract), ``generator`` (synthetic CLIC-like events), ``writer``
(``generate-data``), ``events`` (HDF5 shards + manifest, readers), ``features`` (fixed input
transform), ``batches`` (targets + padded batches), ``model`` / ``backbones`` (MiniMLPF),
``loss`` (upstream loss as sums), ``jets`` (jet response, MET), ``sampler`` (distributed batch
plan), ``optim`` (AdamW/LAMB, schedules), ``distributed`` (none/torch/horovod backends),
``training`` (one work unit with checkpoints), ``search_space`` (the HPO spaces).
The runtime reaches all of it through :class:`hpoq.trainers.mlpf.MLPFTrainer`.
"""
