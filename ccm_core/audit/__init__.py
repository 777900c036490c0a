"""The audit checklist (pass / fail / na with evidence) and reproducible sample pulls."""
