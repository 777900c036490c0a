"""One function per KPI with its written definition, by page domain; the work queues and the
weekly read."""
