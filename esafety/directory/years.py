"""English year groups and key stages (National Curriculum), a pure module."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["KeyStage", "YearGroup", "key_stage_of"]


class YearGroup(StrEnum):
    NURSERY = "nursery"
    RECEPTION = "reception"
    YEAR1 = "year1"
    YEAR2 = "year2"
    YEAR3 = "year3"
    YEAR4 = "year4"
    YEAR5 = "year5"
    YEAR6 = "year6"
    YEAR7 = "year7"
    YEAR8 = "year8"
    YEAR9 = "year9"
    YEAR10 = "year10"
    YEAR11 = "year11"
    YEAR12 = "year12"
    YEAR13 = "year13"

    @property
    def label(self) -> str:
        if self.value.startswith("year"):
            return f"Year {self.value.removeprefix('year')}"
        return self.value.capitalize()

    @property
    def order(self) -> int:
        return list(YearGroup).index(self)

    @classmethod
    def parse(cls, text: str) -> YearGroup:
        """Read a year as schools write it: 'Year 3', 'Y3', '3', 'R', 'Reception', 'N1'."""
        cleaned = text.strip().lower().replace(" ", "").replace("_", "")
        aliases = {
            "n": "nursery",
            "n1": "nursery",
            "n2": "nursery",
            "nur": "nursery",
            "fs1": "nursery",
            "r": "reception",
            "rec": "reception",
            "yr": "reception",
            "fs2": "reception",
            "0": "reception",
            "yearr": "reception",
        }
        if cleaned in aliases:
            return cls(aliases[cleaned])
        for prefix in ("year", "yr", "y", "ncy"):
            if cleaned.startswith(prefix) and cleaned[len(prefix) :].isdigit():
                cleaned = cleaned[len(prefix) :]
                break
        if cleaned.isdigit() and 1 <= int(cleaned) <= 13:
            return cls(f"year{int(cleaned)}")
        return cls(cleaned)  # raises ValueError for anything else


class KeyStage(StrEnum):
    EYFS = "eyfs"
    KS1 = "ks1"
    KS2 = "ks2"
    KS3 = "ks3"
    KS4 = "ks4"
    KS5 = "ks5"

    @property
    def label(self) -> str:
        return "EYFS" if self is KeyStage.EYFS else self.value.upper()


_KEY_STAGES = {
    YearGroup.NURSERY: KeyStage.EYFS,
    YearGroup.RECEPTION: KeyStage.EYFS,
    YearGroup.YEAR1: KeyStage.KS1,
    YearGroup.YEAR2: KeyStage.KS1,
    YearGroup.YEAR3: KeyStage.KS2,
    YearGroup.YEAR4: KeyStage.KS2,
    YearGroup.YEAR5: KeyStage.KS2,
    YearGroup.YEAR6: KeyStage.KS2,
    YearGroup.YEAR7: KeyStage.KS3,
    YearGroup.YEAR8: KeyStage.KS3,
    YearGroup.YEAR9: KeyStage.KS3,
    YearGroup.YEAR10: KeyStage.KS4,
    YearGroup.YEAR11: KeyStage.KS4,
    YearGroup.YEAR12: KeyStage.KS5,
    YearGroup.YEAR13: KeyStage.KS5,
}


def key_stage_of(year: YearGroup) -> KeyStage:
    return _KEY_STAGES[year]
