"""The companion portability service: patient bundles and data-subject rights, beside Orthanc."""
