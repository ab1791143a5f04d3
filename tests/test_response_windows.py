"""[protocol] states the observation windows (dlt_window_days, response_window_days) and what is observed in them
(dlt_definition, response_definition); the [calendar] takes them, must agree with them, and a file whose designs
use response cannot leave the response window unstated (issue 18 item 2)."""

from __future__ import annotations

import pytest

import doseesc
from doseesc import Calendar
from doseesc.errors import ScenarioError

TIERS = '[tiers]\ndoses = [1, 2, 4]\n'
SCENARIO = '[[scenario]]\nname = "s"\ntrue_tox = [0.05, 0.15, 0.4]\ntrue_eff = [0.2, 0.4, 0.5]\n'
THREE = '[[design]]\nname = "3+3"\ntype = "3+3"\n'
BOIN12 = '[[design]]\nname = "BOIN12"\ntype = "BOIN12"\nphi_t = 0.25\nphi_e = 0.25\nmax_n = 18\n'


def _file(tmp_path, protocol: str = "", designs: str = THREE, calendar: str | None = None):
    f = tmp_path / "w.toml"
    cal = "" if calendar is None else f"[calendar]\n{calendar}\n"
    f.write_text(f'[protocol]\ntarget = 0.25\n{protocol}\n{TIERS}{designs}{SCENARIO}{cal}')
    return f


def test_windows_and_definitions_are_kept_on_the_protocol(tmp_path):
    f = _file(tmp_path, 'dlt_window_days = 28\nresponse_window_days = 182.625\n'
                        'dlt_definition = "grade >= 3 CRS within 28 days"\n'
                        'response_definition = "renal remission at 6 months"\n')
    p = doseesc.load_protocol(f)
    assert p.dlt_window_days == 28.0 and isinstance(p.dlt_window_days, float)
    assert p.response_window_days == 182.625       # 6 months of 365.25 / 12 days
    assert p.dlt_definition == "grade >= 3 CRS within 28 days"
    assert p.response_definition == "renal remission at 6 months"


def test_windows_default_to_unstated(tmp_path):
    p = doseesc.load_protocol(_file(tmp_path))
    assert p.dlt_window_days is None and p.response_window_days is None
    assert p.dlt_definition == "" and p.response_definition == ""


@pytest.mark.parametrize("line,shown", [("dlt_window_days = 0", "dlt_window_days = 0"),
                                        ("dlt_window_days = -3", "dlt_window_days = -3"),
                                        ('response_window_days = "90"', "response_window_days = '90'"),
                                        ("response_window_days = true", "response_window_days = True"),
                                        ("response_window_days = nan", "response_window_days = nan")])
def test_bad_window_is_refused_naming_file_table_key_and_value(tmp_path, line, shown):
    f = _file(tmp_path, line)
    with pytest.raises(ScenarioError) as err:
        doseesc.load_protocol(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}: [protocol] {shown} must be a positive number of days"), msg


def test_definition_must_be_text(tmp_path):
    f = _file(tmp_path, "dlt_definition = 28")
    with pytest.raises(ScenarioError, match=r"w.toml: \[protocol\] dlt_definition = 28 must be text"):
        doseesc.load_protocol(f)


def test_calendar_takes_the_protocol_windows_where_it_sets_none(tmp_path):
    # [calendar] sets neither window: it takes 90 (DLT) and 182.625 (response) from [protocol]; the Calendar
    # then waits max(90, 182.625) = 182.625 days for a decision that reads responses, 90 for one on DLTs only
    f = _file(tmp_path, "dlt_window_days = 90\nresponse_window_days = 182.625", BOIN12, "accrual_rate = 1")
    cal = doseesc.load_protocol(f).calendar
    assert cal.dlt_window_days == 90.0 and cal.eff_window_days == 182.625
    assert cal.observation_window(True) == 182.625 and cal.observation_window(False) == 90.0
    assert "response window 182.625 days" in cal.describe()


def test_calendar_window_agreeing_with_the_protocol_is_accepted(tmp_path):
    f = _file(tmp_path, "dlt_window_days = 28\nresponse_window_days = 90", BOIN12,
              "dlt_window_days = 28\neff_window_days = 90.0")
    cal = doseesc.load_protocol(f).calendar
    assert (cal.dlt_window_days, cal.eff_window_days) == (28, 90)


@pytest.mark.parametrize("protocol,calendar,named", [
    ("dlt_window_days = 90", "dlt_window_days = 28", r"\[calendar\] dlt_window_days = 28 disagrees with "
                                                      r"\[protocol\] dlt_window_days = 90"),
    ("response_window_days = 90", "eff_window_days = 28", r"\[calendar\] eff_window_days = 28 disagrees with "
                                                          r"\[protocol\] response_window_days = 90")])
def test_calendar_window_disagreeing_with_the_protocol_is_refused(tmp_path, protocol, calendar, named):
    f = _file(tmp_path, protocol, BOIN12, calendar)
    with pytest.raises(ScenarioError, match=r"w.toml: " + named):
        doseesc.load_protocol(f)


def test_response_design_with_a_calendar_but_no_response_window_is_refused(tmp_path):
    # BOIN12 escalates on response; without a response window the Calendar would read response as known at the
    # end of the 28-day DLT window (its Python default), which a file must state rather than get silently
    f = _file(tmp_path, "dlt_window_days = 28", THREE + BOIN12, "accrual_rate = 1")
    with pytest.raises(ScenarioError) as err:
        doseesc.load_protocol(f)
    msg = str(err.value)
    assert msg.startswith(f"{f}: no response window: design 'BOIN12' uses response")
    assert "[calendar] eff_window_days" in msg and "[protocol] response_window_days" in msg


def test_obd_pick_needs_a_response_window_too(tmp_path):
    # the OBD pick escalates on DLTs only, but its final choice reads responses: it uses response
    pick = '[[design]]\nname = "pick"\ntype = "obd-pick"\nbase = { type = "3+3" }\n'
    with pytest.raises(ScenarioError, match="design 'pick' uses response"):
        doseesc.load_protocol(_file(tmp_path, "", pick, "accrual_rate = 1"))
    p = doseesc.load_protocol(_file(tmp_path, "response_window_days = 28", pick, "accrual_rate = 1"))
    assert p.calendar.eff_window_days == 28.0   # stated equal to the DLT window: accepted


def test_no_refusal_without_a_calendar_or_without_response_designs(tmp_path):
    # no [calendar]: no time is simulated, nothing to refuse
    assert doseesc.load_protocol(_file(tmp_path, "", THREE + BOIN12)).calendar is None
    # toxicity-only designs: the calendar keeps its Python default (response window = DLT window)
    cal = doseesc.load_protocol(_file(tmp_path, "", THREE, "accrual_rate = 1")).calendar
    assert cal.eff_window_days is None and cal.eff_window == cal.dlt_window_days == 28.0


def test_python_calendar_without_response_window_reads_the_dlt_window():
    # the Python API is unchanged: Calendar(eff_window_days=None) means "response known at the end of the DLT
    # window" (docs/notes/windows.md); only scenario files must state it
    cal = Calendar(dlt_window_days=42)
    assert cal.eff_window_days is None and cal.eff_window == 42.0
    assert cal.observation_window(True) == 42.0
