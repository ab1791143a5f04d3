"""Plain-language summary of one truth scenario, generated from the numbers.

Every sentence is built from the results' own estimates; differences between two designs are
paired (the designs saw the same simulated patients) and carry the MCSE of the paired
difference, and a difference within two MCSE is called so.
"""

from __future__ import annotations

import math


from ..compare import paired_difference
from .labels import MONTH_METRICS, metric_name, metric_text, tier_label


def near_tie_warning(results: dict, labels=None) -> str | None:
    """The near-tie warning of one scenario (:meth:`~doseesc.obd.OBDDefinition.near_tie_text`): admissible
    tiers whose true utility lies within the margin of the true OBD's; None where the true OBD is clear or
    the scenario has no OBD. ``results``: design name -> result, all under the same scenario; ``labels``:
    the tiers' names (default: the ladder's own, as on the command line)."""
    r = next((r for r in results.values() if r.obd is not None and r.scenario.true_eff is not None), None)
    if r is None:
        return None
    return r.obd.near_tie_text(r.scenario, r.ladder.tier_labels if labels is None else labels)


def _p(x: float) -> str:
    return f"{100 * x:.1f}%"


def _pm(r, metric: str) -> str:
    est, se = r.metric(metric)
    return _p(est) if r.is_exact else f"{_p(est)} (±{100 * se:.1f}%)"


def _within(d: float, se: float) -> bool:
    return se > 0 and abs(d) < 2 * se


def _asking(results: dict, names: list[str], ref: str, question: str, both: bool) -> tuple[list[str], str | None]:
    """The designs scored on ``question`` (those answering it; all with ``both``) and their reference (``ref``
    if among them, else the first)."""
    chosen = [n for n in names if both or results[n].design.question == question]
    return chosen, (ref if ref in chosen else (chosen[0] if chosen else None))


def scenario_summary(results: dict, reference: str | None = None, both_questions: bool = False,
                     timing: dict | None = None) -> list[str]:
    """Short sentences for a protocol committee about one scenario.

    ``results``: design name -> :class:`~doseesc.results.OperatingCharacteristics`, all under the
    same scenario, in the protocol's order; ``reference`` (default: the first design, usually the
    registered one) is the design the others are compared with. Which design finds the true MTD most
    often is said of the MTD designs only, which names the true OBD of the OBD designs only (each design
    on the question it answers), unless ``both_questions``. ``timing`` (design name -> Monte Carlo result
    with a calendar) gives the durations where ``results`` holds exact runs.
    """
    names = list(results)
    if not names:
        return []
    ref = names[0] if reference is None else reference
    out = []
    if results[ref].true_mtd is not None:
        out += _mtd_sentences(results, names, ref, both_questions)
    obd_names, obd_ref = _asking(results, names, ref, "OBD", both_questions)
    obd = _obd_sentence(results, obd_names, obd_ref) if obd_names else None
    if obd is not None:
        out.append(obd)
    out.append(_sample_size_sentence(results, names))
    out += _duration_sentences(timing or results, names, ref)
    return out


def _mtd_sentences(results: dict, names: list[str], ref: str, both: bool = False) -> list[str]:
    """The true MTD, which design finds it most often, stopping with no dose and patients above the MTD."""
    r0 = results[ref]
    lad, sc, mtd = r0.ladder, r0.scenario, r0.true_mtd
    if mtd < 0:
        out = [f"No tier is acceptable: even the lowest tier has P(DLT) {sc.true_tox[0]:.3g}, above the "
               f"target {r0.target:g}, so the correct decision is to stop without selecting a dose."]
    else:
        out = [f"The true MTD is {tier_label(lad, mtd)} (P(DLT) {sc.true_tox[mtd]:.3g} against the target "
               f"{r0.target:g})."]
    mtd_names, mtd_ref = _asking(results, names, ref, "MTD", both)
    if mtd_names:
        out.append(_correct_sentence(results, mtd_names, mtd_ref))
    if mtd >= 0:
        out += _acceptable_mtd_sentences(results, names, ref)
    else:
        share = {n: results[n].metric("share_above_mtd")[0] for n in names}
        lo = min(share, key=share.get)
        out.append(f"Every patient is treated above the true MTD here; the mean number of patients (all exposed "
                   f"to an unacceptable dose) is lowest with {lo} ({results[lo].expected_n:.1f}).")
    return out


def _correct_sentence(results: dict, names: list[str], ref: str) -> str:
    """Which design picks the true MTD (or stops when none is acceptable) most often, against the reference."""
    r0 = results[ref]
    what = "correctly stops with no dose" if r0.true_mtd < 0 else "picks the true MTD"
    best = max(names, key=lambda n: results[n].metric("p_correct")[0])
    rb = results[best]
    if best == ref or len(names) == 1:
        others = [n for n in names if n != best]
        tail = ""
        if others:
            second = max(others, key=lambda n: results[n].metric("p_correct")[0])
            tail = (f"; the next best is {second} with {_p(results[second].metric('p_correct')[0])}")
        return f"{best} {what} most often: in {_pm(rb, 'p_correct')} of trials{tail}."
    d, se = paired_difference(rb, r0, "p_correct")
    dn, _ = paired_difference(rb, r0, "expected_n")
    more = f"{abs(dn):.1f} {'more' if dn > 0 else 'fewer'} patients on average" if abs(dn) >= 0.05 \
        else "about the same number of patients on average"
    note = " (within Monte Carlo error)" if _within(d, se) else ""
    diff = f"{100 * d:+.1f} points" + ("" if rb.is_exact else f" ± {100 * se:.1f}")
    return (f"{best} {what} in {_pm(rb, 'p_correct')} of trials versus "
            f"{_p(r0.metric('p_correct')[0])} for {ref} (paired difference {diff}{note}), with {more} "
            f"({rb.expected_n:.1f} versus {r0.expected_n:.1f}).")


def _acceptable_mtd_sentences(results: dict, names: list[str], ref: str) -> list[str]:
    """With an acceptable true MTD: designs that still stop with no dose, and patients treated above it."""
    lad, mtd = results[ref].ladder, results[ref].true_mtd
    out = []
    nd = [n for n in names if results[n].p_no_dose >= 0.05]
    if nd:
        worst = max(nd, key=lambda n: results[n].p_no_dose)
        out.append(f"Although {tier_label(lad, mtd)} is acceptable, {worst} stops with no dose in "
                   f"{_pm(results[worst], 'p_no_dose')} of trials"
                   + (f" ({len(nd) - 1} other design{'s' if len(nd) > 2 else ''} at least 5%)."
                      if len(nd) > 1 else "."))
    if mtd < lad.n_tiers - 1:
        share = {n: results[n].metric("share_above_mtd")[0] for n in names}
        lo, hi = min(share, key=share.get), max(share, key=share.get)
        out.append(f"Patients treated above the true MTD: {_p(share[lo])} of a trial's patients with {lo}, "
                   f"up to {_p(share[hi])} with {hi}" + (f"; {_p(share[ref])} with {ref}."
                                                          if ref not in (lo, hi) else "."))
    return out


def _obd_sentence(results: dict, names: list[str], ref: str) -> str | None:
    """The true OBD and the design that names it most often (against the reference); None without an OBD."""
    obd_names = [n for n in names if results[n].true_obd is not None
                 and math.isfinite(results[n].metric("p_select_obd")[0])]
    if not obd_names:
        return None
    o = results[obd_names[0]].true_obd
    text = "none of the tiers" if o < 0 else tier_label(results[ref].ladder, o)
    best = max(obd_names, key=lambda n: results[n].metric("p_select_obd")[0])
    rb = results[best]
    sent = f"OBD question: the true OBD is {text}; {best} names it in {_pm(rb, 'p_select_obd')} of trials"
    if ref in obd_names and best != ref:
        d, se = paired_difference(rb, results[ref], "p_select_obd")
        note = ", within Monte Carlo error" if _within(d, se) else ""
        sent += (f" versus {_p(results[ref].metric('p_select_obd')[0])} for {ref} "
                 f"(paired difference {100 * d:+.1f} points" + ("" if rb.is_exact else f" ± {100 * se:.1f}")
                 + f"{note})")
    return sent + "."


def _sample_size_sentence(results: dict, names: list[str]) -> str:
    """The range of the mean sample size over the designs."""
    en = {n: results[n].expected_n for n in names}
    lo, hi = min(en.values()), max(en.values())
    if f"{lo:.1f}" == f"{hi:.1f}":
        return f"Every design treats {lo:.1f} patients on average."
    return (f"Mean sample size ranges from {lo:.1f} patients ({_names_at(en, lo)}) to {hi:.1f} "
            f"({_names_at(en, hi)}).")


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _names_at(values: dict, v: float) -> str:
    """The designs whose value prints as ``v`` does (one decimal), as "A", "A and B" or "A, B and C": every
    design that reaches the end of a range is named, not only the first."""
    return _join([n for n, x in values.items() if f"{x:.1f}" == f"{v:.1f}"])


def month_definition(name: str, text: str) -> str:
    """A metric's definition as the report words it: durations are shown in months, so their definitions do not
    say "in days" (``"mean trial duration in days: ..."`` -> ``"mean trial duration: ..."``)."""
    if name not in MONTH_METRICS:
        return text
    return text.replace(" in days", "").replace("mean days from", "mean time from")


def _duration_sentences(results: dict, names: list[str], ref: str) -> list[str]:
    """The range of each duration metric of the reference's realism metrics over the designs."""
    out = []
    for name, (_, definition) in results[ref].extra.items():
        if "duration" not in name:  # the other realism metrics are in the tables; the summary stays short
            continue
        vals = {n: results[n].metric(name)[0] for n in names if name in results[n].extra}
        vals = {n: v for n, v in vals.items() if math.isfinite(v)}
        if len(vals) > 1:
            lo, hi = min(vals, key=vals.get), max(vals, key=vals.get)
            same = {n: metric_text(name, v) for n, v in vals.items()}   # months for durations
            at_lo = [n for n, t in same.items() if t == same[lo]]
            at_hi = [n for n, t in same.items() if t == same[hi]]
            out.append(f"{MONTH_METRICS.get(name, metric_name(name)).capitalize()} "
                       f"({month_definition(name, definition)}): from "
                       f"{same[lo]} ({_join(at_lo)}) to {same[hi]} ({_join(at_hi)}).")
    return out
