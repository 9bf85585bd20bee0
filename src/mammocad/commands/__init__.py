"""The work behind each ``mammocad`` sub-command; ``mammocad.cli`` only parses arguments."""
