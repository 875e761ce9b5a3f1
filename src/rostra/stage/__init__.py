"""Stage plane: spaces, roles, invites."""
