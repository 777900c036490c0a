"""Data in and out: imports (CSV, Excel, X12 835), exports (CSV, Excel, PDF packet, meeting pack),
plain-word labels and the synthetic demo generator."""
