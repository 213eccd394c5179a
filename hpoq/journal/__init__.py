"""The study journal's format: typed, versioned records (:mod:`hpoq.journal.records`).

Written by the MPI master (:mod:`hpoq.runtime.journal`), produced as events by the one dispatcher
(:mod:`hpoq.dispatch`) and read back by the resume, ``status`` and ``report``.
"""
