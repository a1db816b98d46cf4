"""The live camera's Start / Stop / Select device buttons drawn like the app's own buttons.

streamlit-webrtc (0.79) builds its buttons with Material UI inside its component iframe. It
takes the Streamlit theme's colours, but not the look of Streamlit's buttons: upper-case
labels, 4 px corners, a shadow, and a fallback font (the iframe never loads the app's
Source Sans). Its Python API offers only ``translations`` (the labels) and the video's
HTML attributes, so the page adds one stylesheet to the component's document (served by
the same Streamlit server, hence reachable from the page): the app's font faces, and the
shape, case and size of ``st.button`` (issue 24).
"""

from __future__ import annotations

import json

import streamlit as st

LABELS = {"start": "Start", "stop": "Stop", "select_device": "Select device"}

# The look of st.button under .streamlit/config.toml; colours stay the theme's (light or dark).
_BUTTONS_CSS = """
body .MuiButton-root.MuiButton-root {
  font-family: "Source Sans", sans-serif; font-size: 0.875rem; font-weight: 400; line-height: 1.6;
  letter-spacing: normal; text-transform: none; border-radius: 0.5rem; padding: 0.25rem 0.75rem;
  min-height: 2.5rem; box-shadow: none;
  border: 1px solid color-mix(in srgb, currentColor 20%, transparent);
}
body .MuiButton-contained.MuiButton-root { border-color: transparent; }
"""

# Runs in the page (not an iframe); adds the stylesheet once to each camera component document,
# including one the component reloads. Constant text: nothing from a user goes in here.
_SCRIPT = """
<script>
(() => {
  if (window.__appStyledWebrtc) return;
  window.__appStyledWebrtc = true;
  const css = %s;
  const fontFaces = () => {
    const out = [];
    for (const sheet of document.styleSheets) {
      let rules;
      try { rules = sheet.cssRules; } catch (e) { continue; }
      for (const rule of rules) {
        if (rule instanceof CSSFontFaceRule) {
          out.push(rule.cssText.replace(/url\\(["']?([^"')]+)["']?\\)/g,
                   (m, u) => `url("${new URL(u, sheet.href || location.href).href}")`));
        }
      }
    }
    return out.join("\\n");
  };
  const style = () => {
    for (const frame of document.querySelectorAll("iframe[title*='streamlit_webrtc']")) {
      let doc;
      try { doc = frame.contentDocument; } catch (e) { continue; }
      if (!doc || !doc.head || doc.getElementById("app-button-style")) continue;
      const tag = doc.createElement("style");
      tag.id = "app-button-style";
      tag.textContent = fontFaces() + css;
      doc.head.appendChild(tag);
    }
  };
  style();
  setInterval(style, 300);   // the component's iframe appears (and may reload) after this script
})();
</script>
"""


def style_webrtc_buttons() -> None:
    """Add the stylesheet (call once per run, after ``webrtc_streamer``)."""
    st.html(_SCRIPT % json.dumps(_BUTTONS_CSS), unsafe_allow_javascript=True)
