"""Study files: the YAML spec (:mod:`hpoq.study.spec`), search spaces (:mod:`hpoq.study.space`)
and wiring a spec to its scheduler (:mod:`hpoq.study.build`)."""

from hpoq.study.spec import StudySpec, check_study, load_study, parse_study

__all__ = ["StudySpec", "check_study", "load_study", "parse_study"]
