"""The MLPF input/target contract (docs/mlpf-data.md#inputs): column names, element types, class labels.

The model never hard-codes these numbers: it reads ``input_dim``, ``elem_types`` and
``num_classes`` from the dataset manifest / HDF5 attributes. These constants describe the
CLIC-like schema that hpoq's synthetic generator writes.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
SYNTHETIC_SCHEMA = "synthetic-clic"
KNOWN_SCHEMAS = ("synthetic-clic", "clic", "cms", "delphes")

#: CLIC-like element features (docs/mlpf-data.md#inputs); column 0 is the element type, 0 = padding.
X_FEATURES = [
    "elemtype",
    "pt_et",
    "eta",
    "sin_phi",
    "cos_phi",
    "p_e",
    "chi2_x",
    "ndf_y",
    "dedx_z",
    "dedx_err_itheta",
    "radius_inner_ecal",
    "tanlambda_hcal",
    "d0_other",
    "omega_nhits",
    "z0_sigmax",
    "time_sigmay",
    "zero_sigmaz",
]
#: element types: 0 = padding, 1 = track, 2 = cluster
ELEM_TYPES = [0, 1, 2]
TRACK, CLUSTER = 1, 2

#: target / baseline columns (docs/mlpf-data.md#targets)
Y_FEATURES = [
    "cls_id",
    "charge",
    "pt",
    "eta",
    "sin_phi",
    "cos_phi",
    "energy",
    "ispu",
    "generatorStatus",
    "simulatorStatus",
    "gp_to_track",
    "gp_to_cluster",
    "jet_idx",
    "particle_number",
]
Y_CLS, Y_CHARGE, Y_PT, Y_ETA, Y_SIN, Y_COS, Y_E, Y_ISPU = range(8)

#: class index -> PDG label: 0 none, 211 charged hadron, 130 neutral hadron, 22 photon, 11 e, 13 mu
CLASS_LABELS = [0, 211, 130, 22, 11, 13]
CLS_NONE, CLS_CH, CLS_NH, CLS_GAMMA, CLS_ELE, CLS_MU = range(6)

#: columns that get log1p in the fixed feature transform (docs/mlpf-data.md#model-and-training), per element type
LOG1P_COLUMNS = {TRACK: [1, 5, 6], CLUSTER: [1, 5, 10, 11, 13]}
#: cluster columns in mm that are converted to m
MM_COLUMNS = {TRACK: [10], CLUSTER: [6, 7, 8, 14, 15, 16]}
