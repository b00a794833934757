"""What a failed nextpnr run tells the user, from a captured nextpnr log (pure parsing)."""

from __future__ import annotations

import pytest

from runner.kinds.build import failure_message
from tests.conftest import ROOT

pytestmark = pytest.mark.unit  # parses a stored log (tests/tiers.py)

# nextpnr-ice40 --up5k --package sg48 --freq 300 on a 32-bit multiply-accumulate: it reports the
# clock after placement (Info: 44.20 MHz) and after routing (ERROR: 41.61 MHz).
TIMING_LOG = ROOT / "tests" / "data" / "build" / "nextpnr-timing-fail.log"


def test_timing_failure_names_each_clock_once_with_the_routed_frequency() -> None:
    message = failure_message(TIMING_LOG.read_text(), "up5k-sg48")
    assert message == ("timing not met: clock 'clk' reaches 41.61 MHz, constraint 300.00 MHz "
                       "(set timing_allow_fail to get the bitstream anyway)")


def test_two_clocks_are_both_named_with_their_last_report() -> None:
    log = ("Info: Max frequency for clock 'a$SB_IO_IN_$glb_clk': 50.00 MHz (FAIL at 100.00 MHz)\n"
           "Info: Max frequency for clock 'b_$glb_clk': 60.00 MHz (FAIL at 100.00 MHz)\n"
           "ERROR: Max frequency for clock 'a$SB_IO_IN_$glb_clk': 48.00 MHz (FAIL at 100.00 MHz)\n"
           "ERROR: Max frequency for clock 'b_$glb_clk': 58.00 MHz (FAIL at 100.00 MHz)\n")
    assert failure_message(log, "hx8k-ct256") == (
        "timing not met: clock 'a' reaches 48.00 MHz, constraint 100.00 MHz; "
        "clock 'b_' reaches 58.00 MHz, constraint 100.00 MHz "
        "(set timing_allow_fail to get the bitstream anyway)")
