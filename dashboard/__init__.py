"""The Streamlit dashboard: ``streamlit run dashboard/app.py`` (pages call :mod:`surgery_core`, no numerics here
beyond the few per-pair tables of :mod:`dashboard.data`)."""
