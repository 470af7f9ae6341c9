"""The directory: schools, people, groups, roster import and the access register."""
