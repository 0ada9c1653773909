"""Unit conversion tools, shipped as an Armillary plugin.

Written only against the public plugin API, as any third party would write one.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from armillary import RegisterTool, Tool, hookimpl, tool

# factor to the base unit of each dimension (metre, kilogram, byte)
_FACTORS: dict[str, dict[str, float]] = {
    "length": {
        "mm": 1e-3, "cm": 1e-2, "m": 1.0, "km": 1e3,
        "in": 0.0254, "ft": 0.3048, "yd": 0.9144, "mi": 1609.344,
    },
    "mass": {"mg": 1e-6, "g": 1e-3, "kg": 1.0, "t": 1e3, "oz": 0.028349523125,
             "lb": 0.45359237},
    "data": {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
             "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40},
}


class UnitsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    precision: int = Field(default=6, ge=1, le=17)


def _dimension(unit: str) -> str:
    for dimension, table in _FACTORS.items():
        if unit in table:
            return dimension
    known = ", ".join(u for table in _FACTORS.values() for u in table)
    raise ValueError(f"unknown unit {unit!r}; known units: {known}")


def make_tools(precision: int = 6) -> list[Tool]:
    """The pack's tools, rounding results to `precision` significant digits."""

    def rounded(value: float) -> float:
        return float(f"{value:.{precision}g}")

    @tool
    def convert_units(value: float, from_unit: str, to_unit: str) -> dict[str, object]:
        """Convert a value between units of length, mass or data size (e.g. km to mi)."""
        source, target = _dimension(from_unit), _dimension(to_unit)
        if source != target:
            raise ValueError(f"cannot convert {source} ({from_unit}) to {target} ({to_unit})")
        result = value * _FACTORS[source][from_unit] / _FACTORS[source][to_unit]
        return {"value": rounded(result), "unit": to_unit}

    @tool
    def convert_temperature(value: float, from_unit: Literal["C", "F", "K"],
                            to_unit: Literal["C", "F", "K"]) -> dict[str, object]:
        """Convert a temperature between Celsius (C), Fahrenheit (F) and Kelvin (K)."""
        celsius = {"C": value, "F": (value - 32) * 5 / 9, "K": value - 273.15}[from_unit]
        if celsius < -273.15:
            raise ValueError("below absolute zero")
        result = {"C": celsius, "F": celsius * 9 / 5 + 32, "K": celsius + 273.15}[to_unit]
        return {"value": rounded(result), "unit": to_unit}

    return [convert_units, convert_temperature]


@hookimpl
def settings_model() -> type[BaseModel]:
    return UnitsSettings


@hookimpl
def register_tools(register: RegisterTool, settings: UnitsSettings) -> None:
    for t in make_tools(settings.precision):
        register(t)
