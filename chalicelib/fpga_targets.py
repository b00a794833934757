"""The FPGA devices and packages this deployment builds for, and the named targets (presets).

iCE40 only: Debian 12 carries nextpnr-ice40 0.4 and fpga-icestorm (icepack), but no nextpnr-ecp5
or prjtrellis (ecppack); ECP5 would need the YoWASP wheels inside the sandbox (see
runner/README.md, "FPGA builds"). A config naming "ecp5" is answered with a 422 that says so.

`ICE40_PACKAGES` lists, for each device flag of `nextpnr-ice40 --<device>`, the packages that
nextpnr-ice40 0.4 accepts with `--package` (its chip databases, built from Project IceStorm's
icebox.py `pinloc_db`). It was read off the installed tool by trying every package name of
pinloc_db with every device; tests/runner/test_build.py checks each entry against the tool again.
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("ice40", "ecp5")
OFFERED_FAMILIES = ("ice40",)

ICE40_PACKAGES: dict[str, tuple[str, ...]] = {
    "lp384": ("cm36", "cm49", "qn32"),
    "lp1k": ("cb121", "cb132", "cb81", "cm121", "cm36", "cm49", "cm81", "qn84", "swg16tr",
             "tq144", "vq100"),
    "lp4k": ("cb132", "cm121", "cm225", "cm81", "tq144"),
    "lp8k": ("cb132", "cm121", "cm225", "cm81", "ct256"),
    "hx1k": ("cb121", "cb132", "cb81", "cm121", "cm36", "cm49", "cm81", "qn84", "swg16tr",
             "tq144", "vq100"),
    "hx4k": ("cb132", "cm121", "cm225", "cm81", "tq144"),
    "hx8k": ("cb132", "cm121", "cm225", "cm81", "ct256"),
    "up3k": ("sg48", "uwg30"),
    "up5k": ("sg48", "uwg30"),
    "u1k": ("sg48",),
    "u4k": ("sg48",),
}

# The constraint file each family's place-and-route tool reads.
CONSTRAINT_SUFFIX = {"ice40": ".pcf", "ecp5": ".lpf"}


@dataclass(frozen=True)
class Target:
    """A board-level preset: a device in a package, with the board's oscillator frequency."""

    name: str
    label: str
    family: str
    device: str
    package: str
    frequency_mhz: float
    board: str


TARGETS: tuple[Target, ...] = (
    Target("ice40-up5k-sg48", "iCE40 UltraPlus UP5K (SG48)", "ice40", "up5k", "sg48", 12,
           "iCEBreaker, UPduino 3"),
    Target("ice40-hx8k-ct256", "iCE40 HX8K (CT256)", "ice40", "hx8k", "ct256", 12,
           "iCE40-HX8K breakout board"),
    Target("ice40-hx1k-tq144", "iCE40 HX1K (TQ144)", "ice40", "hx1k", "tq144", 12, "iCEstick"),
    Target("ice40-lp8k-cm81", "iCE40 LP8K (CM81)", "ice40", "lp8k", "cm81", 16, "TinyFPGA BX"),
)

# What the web client offers for a LibreLane (ASIC) flow; this deployment does not carry it.
ASIC_PDKS = ("sky130A", "sky130_fd_sc_hd", "sky130_fd_sc_hs", "sky130_fd_sc_ms", "sky130_fd_sc_ls",
             "sky130_fd_sc_hvl", "gf180mcuC", "gf180mcuD")


def target(name: str) -> Target | None:
    """The preset called `name`, or None."""
    return next((t for t in TARGETS if t.name == name), None)


def check_device(family: str, device: str, package: str) -> None:
    """Raise ValueError naming what is supported when the family, device or package is not."""
    if family not in OFFERED_FAMILIES:
        raise ValueError(
            f"family {family!r} is not built by this deployment (Debian 12 has no nextpnr-{family}); "
            f"offered: {', '.join(OFFERED_FAMILIES)}")
    packages = ICE40_PACKAGES.get(device)
    if packages is None:
        raise ValueError(f"device {device!r} is not an {family} device nextpnr knows; "
                         f"devices: {', '.join(ICE40_PACKAGES)}")
    if package not in packages:
        raise ValueError(f"package {package!r} does not exist for {device}; "
                         f"packages: {', '.join(packages)}")
