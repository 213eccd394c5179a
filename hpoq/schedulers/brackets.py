"""The exact Hyperband schedule (Li et al., JMLR 2018; hpoq docs/algorithms.md#hyperband).

Integer arithmetic throughout: ``s_max`` is the largest ``s`` with ``eta**s <= R`` (floating
``log(R, eta)`` is wrong for e.g. R = 243, eta = 3), ``n = ceil((s_max + 1) * eta**s / (s + 1))``,
``n_i = n // eta**i`` and ``r_i = round_half_even(R / eta**(s - i))`` computed on a
:class:`fractions.Fraction` (round-half-up would give 3235 epochs instead of 3213 for R = 100).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from hpoq.registry import check_int


@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket: ``s``, ``n`` configurations sampled, rounds ``[(n_i, r_i), ...]``.

    ``r_i`` is the epoch every survivor of round ``i`` reaches (epochs, cumulative).
    """

    s: int
    n: int
    rounds: tuple[tuple[int, int], ...]

    def __iter__(self):  # lets callers unpack ``s, n, rounds = bracket``
        return iter((self.s, self.n, list(self.rounds)))

    def epochs(self) -> int:
        """Epochs this bracket uses: sum over rounds of n_i * (r_i - r_{i-1})."""
        total, r_prev = 0, 0
        for n_i, r_i in self.rounds:
            total += n_i * (r_i - r_prev)
            r_prev = r_i
        return total


def check_r_eta(R, eta) -> tuple[int, int]:
    """R (max epochs per configuration, an integer >= 1) and eta (discard rate, an integer >= 2) as ints;
    a float with an integer value (100.0) is taken as that integer.

    The one place R and eta are validated: a scheduler's constructor calls it once and works on what
    it returns (:func:`schedule_of`, :func:`budget_of` do not validate again).
    """
    return (
        check_int("R (epochs per configuration)", R, 1, whole_floats=True),
        check_int("eta (discard rate)", eta, 2, whole_floats=True),
    )


def s_max_of(R: int, eta: int) -> int:
    """Largest integer s with eta**s <= R (docs/algorithms.md#hyperband)."""
    s = 0
    while eta ** (s + 1) <= R:
        s += 1
    return s


def round_half_even(x: Fraction) -> int:
    """Python's ``round`` on an exact Fraction: ties go to the even integer."""
    return int(round(x))


def hyperband_schedule(R: int, eta: int = 2) -> list[Bracket]:
    """Brackets from s = s_max down to 0, each ``Bracket(s, n, ((n_i, r_i), ...))``; R and eta are
    validated first (:func:`check_r_eta`).

    >>> [b.n for b in hyperband_schedule(100, 2)]
    [64, 38, 23, 14, 10, 7, 7]
    """
    return schedule_of(*check_r_eta(R, eta))


def schedule_of(R: int, eta: int) -> list[Bracket]:
    """:func:`hyperband_schedule` for ``R`` and ``eta`` as :func:`check_r_eta` returned them (a scheduler's
    constructor, which validated them once)."""
    s_max = s_max_of(R, eta)
    brackets = []
    for s in range(s_max, -1, -1):
        n = -(-((s_max + 1) * eta**s) // (s + 1))  # exact ceil division
        rounds = tuple((n // eta**i, round_half_even(Fraction(R, eta ** (s - i)))) for i in range(s + 1))
        brackets.append(Bracket(s=s, n=n, rounds=rounds))
    return brackets


def hyperband_budget(R: int, eta: int = 2) -> tuple[int, int]:
    """(configurations sampled, epochs used) by plain Hyperband: (163, 3213) for R = 100, eta = 2."""
    return budget_of(hyperband_schedule(R, eta))


def budget_of(brackets: list[Bracket]) -> tuple[int, int]:
    """(configurations sampled, epochs used) by the Hyperband ``brackets`` (:func:`schedule_of`)."""
    return sum(b.n for b in brackets), sum(b.epochs() for b in brackets)
