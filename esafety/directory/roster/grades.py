"""OneRoster grade codes (US: IT, PR, PK, TK, KG, 01-13) to English year groups.

The mapping is ``settings.roster.grade_map`` (default: IT, PR, PK → Nursery; TK, KG →
Reception; 01 → Year 1 … 13 → Year 13), so a school whose export uses other codes can
say what they mean. Codes match without regard to case, and ``3`` is read as ``03``.
"""

from __future__ import annotations

from collections.abc import Mapping

from esafety.directory.years import YearGroup

__all__ = ["GradeMap"]


class GradeMap:
    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._years = {code.strip().upper(): YearGroup(year) for code, year in mapping.items()}

    def year_of(self, grade: str) -> YearGroup | None:
        code = grade.strip().upper()
        if code.isdigit() and len(code) == 1:
            code = f"0{code}"
        return self._years.get(code)

    @property
    def fix(self) -> str:
        return (
            f"use one of: {', '.join(sorted(self._years))} "
            "(or map it in the [roster] grade_map setting)"
        )
