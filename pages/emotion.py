"""Placeholder replaced below."""
import streamlit as st
st.title("🙂 Mood from your face")
