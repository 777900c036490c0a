"""CCM program core: schema, Medicare rules, patient-month engine, KPIs, audit, imports.

Knows nothing of Streamlit: pages call it and draw.
"""

__version__ = "0.1.0"
