"""The refusal audit: refusal rates of a base and a tuned model, and their refusal directions.

>>> from audit.refusal import refusal_audit
>>> result = refusal_audit(base, tuned, tok, harmful, harmless)     # doctest: +SKIP
>>> result.to_dict()["summary"]                                      # doctest: +SKIP
"""

from audit.refusal.analysis import refusal_audit
from audit.refusal.results import RefusalAuditResult

__all__ = ["RefusalAuditResult", "refusal_audit"]
