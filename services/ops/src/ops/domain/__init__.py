"""Pure rules of the ops service."""
