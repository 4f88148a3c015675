"""The stages of a partner application and its number: shared by the stage machine (hq.applications),
its mail (hq.application_mail) and the pages."""

from __future__ import annotations

STAGES = ("submitted", "initial_review", "manual_review", "contract_signed", "base_fee_paid", "licence_issued")
REJECTED = "rejected"
# an operator's decision moves an application from the key to the value (or rejects it)
NEXT = {"manual_review": "contract_signed", "contract_signed": "base_fee_paid", "base_fee_paid": "licence_issued"}
# what the applicant is told to expect at a stage, in working days
EXPECTED_DAYS = {"manual_review": 3, "contract_signed": 5, "base_fee_paid": 2, "licence_issued": 0}
NUMBER_PATTERN = r"^A-[0-9]{6,9}$"


def number_of(app_id: int) -> str:
    return f"A-{app_id:06d}"
