"""Routing stable studies to other nodes, de-identified, with a lawful basis, fail-closed."""
