"""Why an assignment has no plan, in plain words.

Cheap necessary checks first (workload against capacity, accounts no rep may take, locks, a rep
whose bands no set of its accounts can meet, moves forced beyond the cap), then each constraint family is relaxed in
turn to name the one that blocks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from tercap.assign.compile import FAMILY_TEXT, CompiledAssignment
from tercap.backends import SolveLimits, get_backend
from tercap.model import LinearModel
from tercap.scenario import Scenario
from tercap.status import SolveStatus

RELAXABLE = ("workload_balance", "potential_balance", "moved_share", "moved_potential_share", "max_accounts",
             "capacity")
RELAX_SECONDS = 20.0
MAX_BAND_CHECKS = 50  # reps whose band is narrower than their smallest account, tried one by one
BAND_CHECK_SECONDS = 2.0


def _ids(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (", …" if len(values) > limit else "")


def necessary_checks(scenario: Scenario, compiled: CompiledAssignment) -> list[str]:
    """Problems visible without solving anything."""
    inputs, pairs = compiled.inputs, compiled.pairs
    findings: list[str] = []
    has_pair = np.zeros(inputs.num_accounts, dtype=bool)
    has_pair[pairs.account] = True
    orphans = np.flatnonzero(~has_pair)
    if orphans.size:
        segments = sorted(set(inputs.account_segment[orphans]))
        findings.append(f"{orphans.size:,} account(s) have no eligible rep ({_ids(inputs.account_ids[orphans])}), "
                        f"in segment(s) {', '.join(segments)}: no active rep of that segment meets the "
                        f"experience, distance and pair rules.")
    active = inputs.rep_capacity > 0
    for group, name in enumerate(inputs.group_names):
        work = inputs.account_workload[inputs.account_group == group].sum()
        capacity = inputs.rep_capacity[active & (inputs.rep_group == group)].sum()
        label = name if name != "all" else "total"
        if work > capacity > 0:
            findings.append(f"{label} workload {work:,.0f} h exceeds {label} capacity {capacity:,.0f} h by "
                            f"{work / capacity - 1:.1%}.")
        limits = inputs.rep_max_accounts[active & (inputs.rep_group == group)]
        accounts = int((inputs.account_group == group).sum())
        if limits.size and (limits >= 0).all() and limits.sum() < accounts:
            findings.append(f"{label} has {accounts:,} accounts but its reps may carry at most {limits.sum():,}.")

    locked = np.flatnonzero(inputs.account_locked)
    if locked.size:
        owner = inputs.account_owner[locked]
        locked_work = np.bincount(owner, inputs.account_workload[locked], minlength=inputs.num_reps)
        upper = compiled.workload_ceiling
        for rep in np.flatnonzero(locked_work > upper + 1e-9):
            what = "capacity" if upper[rep] >= inputs.rep_capacity[rep] - 1e-9 else "workload band top"
            findings.append(f"accounts locked to {inputs.rep_ids[rep]} need {locked_work[rep]:,.0f} h, more than "
                            f"{inputs.rep_ids[rep]}'s {what} of {upper[rep]:,.0f} h.")

    if compiled.mode == "balanced" and compiled.hard_balance:
        lo, hi = compiled.workload_band
        checked = 0
        for rep in np.flatnonzero(compiled.target_workload > 0):
            candidates = pairs.workload[pairs.rep == rep]
            narrow = candidates.size and lo[rep] > 0 and hi[rep] - lo[rep] < candidates.min()
            if narrow and checked < MAX_BAND_CHECKS:  # then whole accounts may step over the band: try
                checked += 1
                if not _band_reachable(compiled, rep):
                    findings.append(f"no set of the accounts {inputs.rep_ids[rep]} may take lands in its bands "
                                    f"(workload {lo[rep]:,.0f}–{hi[rep]:,.0f} h; the smallest account is "
                                    f"{candidates.min():,.0f} h).")
            if candidates.sum() < lo[rep]:
                findings.append(f"{inputs.rep_ids[rep]} needs at least {lo[rep]:,.0f} h of work but its eligible "
                                f"accounts hold only {candidates.sum():,.0f} h.")

    count_cap, _ = compiled.moved_cap
    if count_cap is not None:
        owned = inputs.account_owner >= 0
        forced = owned & (compiled.owner_pair < 0)
        if forced.sum() > count_cap:
            findings.append(f"{int(forced.sum()):,} accounts must change owner (their owner has no capacity in "
                            f"the period) but the moved-share cap allows {count_cap:,.0f}.")
    return findings


def _band_reachable(compiled: CompiledAssignment, rep: int) -> bool:
    """Whether some set of the accounts `rep` may take meets its workload and potential bands, its
    capacity, its account limit and its locks, alone (a small MIP)."""
    inputs, pairs = compiled.inputs, compiled.pairs
    mine = np.flatnonzero(pairs.rep == rep)
    takeable = ~inputs.account_locked[pairs.account[mine]] | (inputs.account_owner[pairs.account[mine]] == rep)
    mine = mine[takeable]
    accounts = pairs.account[mine]
    count = mine.size
    (w_lo, w_hi), (p_lo, p_hi) = compiled.workload_band, compiled.potential_band
    limit = inputs.rep_max_accounts[rep] if inputs.rep_max_accounts[rep] >= 0 else count
    model = LinearModel(
        cost=np.zeros(count), matrix=sp.csr_matrix(np.vstack([pairs.workload[mine], inputs.account_potential[accounts],
                                                              np.ones(count)])),
        row_lower=np.array([w_lo[rep], p_lo[rep], 0.0]),
        row_upper=np.array([min(w_hi[rep], inputs.rep_capacity[rep]), p_hi[rep], float(limit)]),
        col_lower=inputs.account_locked[accounts].astype(float), col_upper=np.ones(count),
        integral=np.ones(count, dtype=bool))
    result = get_backend("highs").solve(model, SolveLimits(time_limit=BAND_CHECK_SECONDS))
    return result.status is not SolveStatus.INFEASIBLE


def relaxation_findings(compiled: CompiledAssignment) -> list[str]:
    """Relax each constraint family alone; name those whose removal makes the model feasible."""
    model = compiled.model
    highs = get_backend("highs")
    limits = SolveLimits(time_limit=RELAX_SECONDS)
    full = highs.solve(model.relaxed(), limits)
    integer_only = full.status is not SolveStatus.INFEASIBLE  # the LP is fine: integrality blocks
    findings = []
    present = set(model.row_family)
    for family in RELAXABLE:
        if family not in present:
            continue
        relaxed = model.without_families({family})
        result = highs.solve(relaxed if integer_only else relaxed.relaxed(), limits)
        if result.status.has_plan:
            findings.append(f"relaxing the {FAMILY_TEXT[family]} alone makes a plan possible: it is the "
                            "constraint that blocks.")
    if not findings:
        findings.append("no single constraint family is to blame: several block together (try loosening the "
                        "balance tolerances and the moved-share cap together).")
    return findings


def diagnose(scenario: Scenario, compiled: CompiledAssignment) -> list[str]:
    """Plain sentences saying why no plan meets the hard constraints."""
    return necessary_checks(scenario, compiled) + relaxation_findings(compiled)
