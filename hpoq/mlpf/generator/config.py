"""The generator's configuration: the stages' settings flattened into one record, and presets.

:class:`GeneratorConfig` has one field per stage setting (the field names are unique across
stages), so a dataset's manifest records every number as a flat JSON object and
``make_config(preset, **overrides)`` takes the same names as ``--param`` on the command line.
Units: GeV, mm, T, ns.
"""

from __future__ import annotations

import dataclasses

from hpoq.errors import ConfigError
from hpoq.mlpf.generator.calorimeter import CalorimeterSettings
from hpoq.mlpf.generator.clustering import ClusteringSettings
from hpoq.mlpf.generator.common import settings_of
from hpoq.mlpf.generator.genjets import JetSettings
from hpoq.mlpf.generator.pf import PFSettings
from hpoq.mlpf.generator.process import ProcessSettings
from hpoq.mlpf.generator.tracker import Geometry, TrackerSettings
from hpoq.mlpf.generator.truth import TruthSettings
from hpoq.registry import Interval

#: settings dataclass of each stage, in pipeline order
STAGE_SETTINGS = (
    ProcessSettings,
    Geometry,
    TrackerSettings,
    CalorimeterSettings,
    ClusteringSettings,
    TruthSettings,
    PFSettings,
    JetSettings,
)
#: tuple-valued fields whose length may differ from the default's
_VARIABLE_LENGTH = ("jet_multiplicities", "jet_probabilities", "species_shares", "charged_hadron_shares")


class _ConfigMethods:
    def validate(self) -> "GeneratorConfig":
        """This config, after checking the values no single field's type can guarantee."""
        if abs(sum(self.jet_probabilities) - 1.0) > 1e-6 or len(self.jet_probabilities) != len(self.jet_multiplicities):
            raise ConfigError("generator: jet_probabilities must sum to 1 and match jet_multiplicities")
        if self.sqrt_s <= 0 or self.field_t <= 0 or self.ecal_radius_mm <= 0:
            raise ConfigError("generator: sqrt_s, field_t and ecal_radius_mm must be positive")
        if any(s < 0 for s in self.species_shares) or sum(self.species_shares) <= 0:
            raise ConfigError("generator: species_shares must be non-negative with a positive sum")
        return self

    def to_dict(self) -> dict:
        """Flat JSON-ready dict (tuples as lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def stage(self, settings_cls):
        """The settings of one stage (an instance of ``settings_cls``) taken from this config."""
        return settings_of(settings_cls, self)


GeneratorConfig = dataclasses.make_dataclass(
    "GeneratorConfig",
    [(f.name, f.type, dataclasses.field(default=f.default)) for cls in STAGE_SETTINGS for f in dataclasses.fields(cls)]
    + [("preset", str, dataclasses.field(default="clic"))],
    bases=(_ConfigMethods,),
)
GeneratorConfig.__module__ = __name__
GeneratorConfig.__doc__ = """All knobs of the generator, one field per stage setting (defaults: the ``clic`` preset)."""

PRESETS: dict[str, dict] = {
    # no merging, splitting or noise; linear calorimeter
    "easy": dict(
        had_response_base=1.0,
        had_response_amp=0.0,
        split_probability_max=0.0,
        merge_radius_em=0.0,
        merge_radius_had=0.0,
        noise_clusters_mean=0.0,
        fake_track_rate=0.0,
    ),
    "clic": {},
    # more jets, larger merge radii, 20 PU particles, worse resolution
    "dense": dict(
        jet_multiplicities=(4, 6, 8),
        jet_probabilities=(0.4, 0.4, 0.2),
        pu_mean=20.0,
        merge_radius_em=0.04,
        merge_radius_had=0.12,
        em_stochastic=0.2,
        had_stochastic=0.65,
        track_pt_res_b=2e-3,
        noise_clusters_mean=10.0,
    ),
}


def _checked(key: str, value, ref):
    """``value`` converted to the type of the default ``ref``; raises ValueError / TypeError if it cannot be."""
    if isinstance(ref, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(ref) and key not in _VARIABLE_LENGTH:
            raise ValueError
        return tuple(type(r)(v) for r, v in zip(list(ref) * len(value), value))
    if isinstance(ref, (bool, str)):
        if not isinstance(value, type(ref)):
            raise ValueError
        return value
    if not Interval(float).accepts(value):  # a finite number, never a bool
        raise ValueError
    return type(ref)(value)


def make_config(preset: str = "clic", **overrides) -> GeneratorConfig:
    """The config of ``preset`` with ``overrides`` (field name -> value) applied."""
    if preset not in PRESETS:
        raise ConfigError(f"generator: unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"generator: unknown parameter(s) {', '.join(unknown)}")
    defaults = GeneratorConfig()
    checked = {}
    for key, value in overrides.items():
        ref = getattr(defaults, key)
        try:
            checked[key] = _checked(key, value, ref)
        except (TypeError, ValueError):
            raise ConfigError(f"generator: parameter {key} must be like {ref!r}, got {value!r}") from None
    values = dict(PRESETS[preset])
    values.update(checked)
    values["preset"] = preset
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
    return GeneratorConfig(**values).validate()
