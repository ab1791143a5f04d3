"""Documented limits on what a scenario file and the command line may ask for.

Every limit is checked once, at the file boundary (:func:`doseesc.protocol.load_protocol`, which
``doseesc check`` runs) or where the command line reads an option, before any work starts. An error names
the limit, the file, the key and the value, e.g.::

    big.toml: [[design]] 'BOIN': max_n = 1000000 is above the limit of 1,000 patients per trial (MAX_N)

The limits are far above any real early-phase trial; they exist so that a typing slip (an extra zero, a
pasted number) gives a clear message instead of a run that asks for terabytes of memory. See
docs/notes/limits.md for the reasons behind each number.
"""

from __future__ import annotations

import math
import re
import unicodedata

from .errors import ScenarioError

#: Largest scenario file read, in bytes (the bundled files are 10-16 kB).
MAX_FILE_BYTES = 1_000_000
#: Deepest nesting of tables and arrays below the top level (the bundled files reach 4).
MAX_DEPTH = 12
#: Most dose tiers.
MAX_TIERS = 20
#: Most patients in one simulated trial (a design's ``max_n``, a grid's ``sample_size``).
MAX_N = 1_000
#: Largest cohort.
MAX_COHORT = 100
#: Most simulated trials per design and scenario (``[run] n_trials``, ``-n``, a grid's ``n_trials``).
MAX_TRIALS = 10_000_000
#: Most live states the exact engine holds in one step by default (``--max-states``).
MAX_STATES = 2_000_000
#: Most nodes an escalation-path enumeration lists by default (``doseesc paths --max-nodes``).
MAX_PATH_NODES = 200_000
#: Live states within which the command line and the report use exact enumeration beside the simulations
#: (a few seconds per design and scenario on the bundled files; larger state spaces stay Monte Carlo).
PREFER_EXACT_STATES = 100_000
#: Trials simulated at once by default (bounds a batch's memory: its patients' latent uniforms and records, about
#: 20 bytes per patient slot, 10 MB for N = 30). Results are bit-identical for any batch size.
BATCH_SIZE = 16_384
#: Longest design, scenario, grid or protocol name, in characters.
MAX_NAME = 100
#: Longest free text (title, source, description, definitions), in characters.
MAX_TEXT = 20_000
#: Most entries in one array (tables of a kind, values of a list).
MAX_ITEMS = 10_000
#: Largest integer anywhere in a file (TOML's own limit: a signed 64-bit integer); ``[run] seed`` may be
#: up to :data:`MAX_SEED` (the 128-bit entropy doseesc records and prints).
MAX_INT = 2 ** 63 - 1
MAX_SEED = 2 ** 128 - 1
#: Largest integer design option other than ``max_n`` and ``cohort_size`` (counts of patients, tiers or
#: grid points).
MAX_DESIGN_INT = 100_000
#: Plausible accrual: patients per month.
ACCRUAL_RANGE = (0.01, 1_000.0)
#: Plausible durations in days (windows, follow-up, waits, reviews, manufacturing): 0 to 10 years.
DAYS_RANGE = (0.0, 3_652.5)
#: Most digits in a tier number of a trial log (``"1NNN 2NTN"``).
MAX_TIER_DIGITS = 3


def short(value, width: int = 60) -> str:
    """``repr(value)`` cut to about ``width`` characters (a 5,000-digit integer shows its length)."""
    if isinstance(value, int) and not isinstance(value, bool):
        digits = len(str(abs(value))) if abs(value) < 10 ** 4000 else None
        if digits is None:
            return "an integer of more than 4,000 digits"
        if digits > 25:
            text = str(value)
            return f"{text[:8]}...{text[-4:]} ({digits} digits)"
        return str(value)
    try:
        text = repr(value)
    except (ValueError, RecursionError):   # pragma: no cover - repr of exotic values
        return f"a {type(value).__name__}"
    return text if len(text) <= width else text[: width - 3] + "..."


def kind(value) -> str:
    """The TOML name of a value's type, for messages."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def check_name(value, at: str, key: str = "name") -> str:
    """A name: non-empty text of at most :data:`MAX_NAME` characters, no control characters, no leading or
    trailing white space."""
    if not isinstance(value, str):
        raise ScenarioError(f"{at}: {key} = {short(value)} must be text (a quoted string), not {kind(value)}")
    if not value.strip():
        raise ScenarioError(f"{at}: {key} = {value!r} must be a non-empty text")
    if len(value) > MAX_NAME:
        raise ScenarioError(f"{at}: {key} = {short(value)} has {len(value)} characters; the limit is "
                            f"{MAX_NAME} (MAX_NAME)")
    bad = next((c for c in value if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")), None)
    if bad is not None:
        raise ScenarioError(f"{at}: {key} = {short(value)} contains the control character {bad!r}; names are "
                            "printable text")
    if value != value.strip():
        raise ScenarioError(f"{at}: {key} = {value!r} begins or ends with white space")
    return value


def check_text(value, at: str, key: str) -> str:
    """Free text of at most :data:`MAX_TEXT` characters."""
    if not isinstance(value, str):
        raise ScenarioError(f"{at}: {key} = {short(value)} must be text (a quoted string), not {kind(value)}")
    if len(value) > MAX_TEXT:
        raise ScenarioError(f"{at}: {key} has {len(value):,} characters; the limit is {MAX_TEXT:,} (MAX_TEXT)")
    return value


def check_count(value, at: str, key: str, *, low: int, high: int, limit: str, what: str) -> int:
    """An integer in ``[low, high]``; ``limit`` names the constant, ``what`` the unit, in the message."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{at}: {key} = {short(value)} must be an integer, not {kind(value)}")
    if value < low:
        raise ScenarioError(f"{at}: {key} = {short(value)} must be at least {low}")
    if value > high:
        raise ScenarioError(f"{at}: {key} = {short(value)} is above the limit of {high:,} {what} ({limit})")
    return value


def check_range(value, at: str, key: str, bounds: tuple[float, float], what: str, *,
                open_low: bool = False, none: bool = False):
    """A finite number within ``bounds`` (``open_low``: strictly above the lower bound)."""
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{at}: {key} = {short(value)} must be a number of {what}, not {kind(value)}")
    lo, hi = bounds
    v = float(value)
    if not math.isfinite(v) or v < lo or v > hi or (open_low and v <= lo):
        side = f"above {lo:g}" if open_low else f"from {lo:g}"
        raise ScenarioError(f"{at}: {key} = {short(value)} is outside the plausible range of {what} "
                            f"({side} to {hi:g})")
    return value


def _top_paths(data: dict):
    """``(value, path)`` of each top-level entry, named as the README writes them: ``[calendar]``,
    ``[[design]] 'BOIN'`` (``[[design]] #3`` where the entry has no usable name)."""
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, entry in enumerate(value):
                name = entry.get("name")
                label = repr(name) if isinstance(name, str) and len(name) <= MAX_NAME else f"#{i + 1}"
                yield entry, f"[[{key}]] {label}:"
        elif isinstance(value, dict):
            yield value, f"[{key}]"
        else:
            yield value, key


def walk(data: dict, at: str) -> None:
    """Check every value of a parsed file for size: integers within :data:`MAX_INT` (``seed`` within
    :data:`MAX_SEED`), no NaN or infinite number, texts within :data:`MAX_TEXT`, arrays within
    :data:`MAX_ITEMS`, nesting within :data:`MAX_DEPTH`. Iterative, so any depth is refused cleanly."""
    stack = [(v, p, 1) for v, p in _top_paths(data)]
    while stack:
        v, p, d = stack.pop()
        if d > MAX_DEPTH:
            raise ScenarioError(f"{at}: {p} is nested {d} levels deep; the limit is {MAX_DEPTH} (MAX_DEPTH)")
        if isinstance(v, dict):
            for k, sub in v.items():
                if len(k) > MAX_NAME:
                    raise ScenarioError(f"{at}: key {short(k)} has {len(k)} characters; the limit is {MAX_NAME}")
                stack.append((sub, f"{p} {k}" if p.endswith((":", "]")) else f"{p}.{k}", d + 1))
        elif isinstance(v, list):
            if len(v) > MAX_ITEMS:
                raise ScenarioError(f"{at}: {p} has {len(v):,} entries; the limit is {MAX_ITEMS:,} (MAX_ITEMS)")
            for i, sub in enumerate(v):
                stack.append((sub, f"{p}[{i}]", d + 1))
        elif isinstance(v, bool):
            continue
        elif isinstance(v, int):
            top = MAX_SEED if p.rsplit(" ", 1)[-1] in ("seed", "[run] seed") else MAX_INT
            if not -top <= v <= top:
                raise ScenarioError(f"{at}: {p} = {short(v)} is too large (integers are limited to "
                                    f"{'2^128' if top == MAX_SEED else '2^63'} in absolute value)")
        elif isinstance(v, float):
            if not math.isfinite(v) and not p.startswith("[protocol]"):   # [protocol] keys say what they take
                raise ScenarioError(f"{at}: {p} = {v!r} is not a finite number")
        elif isinstance(v, str):
            if len(v) > MAX_TEXT:
                raise ScenarioError(f"{at}: {p} has {len(v):,} characters; the limit is {MAX_TEXT:,} (MAX_TEXT)")


def long_number(raw: bytes) -> str | None:
    """Where a file holds an integer too long for Python to read (more than 4,300 digits): ``line N, key
    K``; None when there is none."""
    m = re.search(rb"[0-9_]{4000,}", raw)
    if m is None:
        return None
    line_no = raw.count(b"\n", 0, m.start()) + 1
    line_start = raw.rfind(b"\n", 0, m.start()) + 1
    key = re.match(rb"\s*([A-Za-z0-9_.\"' -]+?)\s*=", raw[line_start:m.start()])
    return f"line {line_no}" + (f", key {key.group(1).decode(errors='replace').strip()}" if key else "")
