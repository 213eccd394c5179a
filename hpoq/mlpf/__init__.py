"""MLPF for hpoq (docs/mlpf-data.md): model, synthetic events, HDF5 shards, sampler, data-parallel training.

Modules: ``schema`` (column contract), ``generator`` (synthetic CLIC-like events), ``writer``
(``generate-data``), ``events`` (HDF5 shards + manifest, readers), ``features`` (fixed input
transform), ``batches`` (targets + padded batches), ``model`` / ``backbones`` (MiniMLPF),
``loss`` (upstream loss as sums), ``jets`` (FastJet jet response, MET), ``sampler`` (distributed
batch plan), ``optim`` (AdamW/LAMB, schedules), ``distributed`` (none/torch/horovod backends),
``training`` (one work unit with checkpoints, the model factory seam), ``search_space`` (the HPO
spaces), ``upstream`` (upstream's own MLPF from PyPI ``particleflow`` as ``model: particleflow``),
``upstream_data`` (upstream's CLIC parquet / tfds datasets -> HDF5, ``hpoq convert-events``).
The runtime reaches all of it through :class:`hpoq.trainers.mlpf.MLPFTrainer`.
"""
