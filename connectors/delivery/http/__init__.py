"""HTTP to the targets: the sender (signing, CRA, OAuth) and the SSRF-guarded connector."""

from connectors.delivery.http.sender import HttpResult, Sender, Target

__all__ = ["HttpResult", "Sender", "Target"]
