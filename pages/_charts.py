"""Chart colours and number formats the pages share, chosen to read on the dark and the light theme.

Streamlit's own chart palette starts with two blues (so a two-series chart looks like one colour)
and Plotly's Viridis ends in a near-black purple that vanishes on a dark background. These colours
are all of middle lightness: each stands out from a white and from a near-black page.
"""

#: Distinct colours for categories (series, splits, genres), in order of use.
SERIES = ["#3d8bd9", "#e8862a", "#2a9d5c", "#d64550", "#9467bd", "#1aa3a3", "#c29a00"]

#: A colour scale for a measure (low -> high), with neither end near black or white.
SCALE = ["#4f6fdf", "#31a89b", "#e0b423"]

#: RMSE everywhere in the app (home metrics, model charts and tables): four decimals.
RMSE_FORMAT = ".4f"
