"""Glue between Orthanc's embedded ``orthanc`` module and the orthanc-gdpr library.

This package is the only place in the project that touches the ``orthanc`` module. It never
imports it: the module is handed in as an argument by the entry script
(``orthanc_gdpr/plugin_entry.py``), which keeps everything importable and testable outside
Orthanc. Code here targets the Python plugin 4.0 API (Debian 12); newer functions are detected
with ``hasattr(orthanc, ...)``.
"""
