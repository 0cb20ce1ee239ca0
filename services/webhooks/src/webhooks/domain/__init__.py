"""Pure rules of the webhooks service."""
