"""Accounts and security: passwords, two-step sign-in, sessions, tokens, roles and permissions."""
