"""Sign-in, sessions, users and roles, the access log and admin settings."""
