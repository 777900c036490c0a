"""App-side helpers: the only Streamlit-aware layer between pages and ``ccm_core``.

Pages import from here (session, data, filters, meeting, exports, components)
and from ``ccm_core``; nothing in ``ccm_core`` imports Streamlit.
"""
