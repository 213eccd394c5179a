"""hpoq: hyperparameter optimisation that predicts how a training run ends and stops the losers.

Parts (one sub-package each): ``curves`` (curve tables and the HDF5 curve store), ``predict``
(performance predictors), ``schedulers`` (what gets how many epochs), ``simulate`` (replay
backend), ``runtime`` (MPI backend), ``trainers`` (train one configuration), ``mlpf`` (the MLPF
model and data), ``study`` (YAML study files), ``report`` (HTML report), ``cli`` (subcommands).
"""

__version__ = "0.1.0"
