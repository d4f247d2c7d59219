"""HTTP to the targets: the webhooks as targets, the sender (signing, CRA, OAuth) and the
SSRF-guarded connector."""

from connectors.delivery.http.sender import HttpResult, Sender
from connectors.delivery.http.targets import Target, Targets

__all__ = ["HttpResult", "Sender", "Target", "Targets"]
