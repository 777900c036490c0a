"""Click a bar, get the rows behind it: Altair point selections through ``st.altair_chart(on_select=...)``.

``clickable(chart, key, field)`` draws the chart with a point selection on ``field`` and returns the
values the user clicked (empty when nothing is selected).  The page then filters its own, already
role-scoped and meeting-mode-aware list (``ui.meeting.present``) to those values, so a click can never
show more than the page itself may show.
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from ui.charts import LABEL_SIZE, TITLE_SIZE


def clickable(chart: alt.Chart, key: str, field: str, alt_text: str) -> list:
    """Draw ``chart`` (one mark layer) full width; return the clicked values of ``field``."""
    name = f"pick_{key}"
    sel = alt.selection_point(name=name, fields=[field], on="click", clear="dblclick")
    chart = (
        chart.add_params(sel)
        .encode(opacity=alt.condition(sel, alt.value(1.0), alt.value(0.35)))
        .properties(autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))
        .configure_axis(labelFontSize=LABEL_SIZE, titleFontSize=TITLE_SIZE, labelLimit=260)
        .configure_legend(labelFontSize=LABEL_SIZE, titleFontSize=LABEL_SIZE, orient="bottom", direction="horizontal")
        .configure_view(strokeWidth=0)
    )
    event = st.altair_chart(chart, width="stretch", on_select="rerun", selection_mode=[name], key=key)
    picked = []
    try:
        for item in event.selection.get(name) or []:
            if isinstance(item, dict) and field in item:
                picked.append(item[field])
    except AttributeError:  # no selection state (older runtime)
        return []
    return picked
