"""The Streamlit dashboard: ``streamlit run dashboard/app.py`` (pages call :mod:`surgery_core`, no numerics and no
drawing here: per-pair tables are :mod:`surgery_core.run.pairs`, pictures :mod:`surgery_core.share.drawing`)."""
