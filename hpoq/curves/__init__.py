"""Learning curves: curve tables (CSV / CSV.gz), the HDF5 curve store and the shared benchmark tables."""

from hpoq.curves.store import CurveStore, read_store, write_store
from hpoq.curves.table import CurveTable, load_table, write_table

__all__ = ["CurveTable", "load_table", "write_table", "CurveStore", "read_store", "write_store"]
