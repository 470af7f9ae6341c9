"""Safeguarding records: concerns, incident procedures, chronologies."""
