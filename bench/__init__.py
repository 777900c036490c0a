"""Benchmarks and load tools, kept out of the runtime packages (``ccm_core``, ``ui``).

``python -m bench`` (= ``make bench``) is the 50,000-patient harness in ``bench.harness``; its
Streamlit stage is ``bench.app_stage``.  Figures and how to read them: docs/performance.md.
"""
