"""Learning curves: curve tables (CSV / CSV.gz) and the HDF5 curve store."""
from hpoq.curves.table import CurveTable, load_table

__all__ = ["CurveTable", "load_table"]
