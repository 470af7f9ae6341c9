"""Roster import: OneRoster 1.1 CSV and plain MIS CSV exports."""
