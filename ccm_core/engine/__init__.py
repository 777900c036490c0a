"""The rules that decide a patient-month: the engine (minutes, codes, findings), the compliance
prerequisites (billing status) and the shared SQL pieces and filters."""
