"""DICOM reading: headers, series grouping, pixel loading."""
